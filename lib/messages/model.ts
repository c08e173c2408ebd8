/**
 * The exact model version a run or deployment uses (lib/registry's ResolvedModel), as workflows
 * carry it between each other. Pure (zod only): the workflow bundle imports it.
 */
import { z } from 'zod';

export const ResolvedModelSchema = z.strictObject({ name: z.string(), version: z.number().int(), sha256: z.string(), size: z.number(), uri: z.string(), ref: z.string() });
