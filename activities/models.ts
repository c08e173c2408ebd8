/**
 * What activities need to know about a model, loaded once per worker process: its manifest
 * (versions are immutable) and the assembly plan for a set of on-demand features, checked
 * against the manifest's ONNX signature; and the session, checked once against the real one.
 * Shared by the batch and online activities.
 */
import type * as ortTypes from 'onnxruntime-node';
import type { OnDemandRef } from '../lib/features/on-demand';
import { checkSignature, planAssembly, type AssemblyPlan } from '../lib/pipeline/assemble';
import type { ModelManifest, ResolvedModel } from '../lib/registry/manifest';
import { signatureOf } from '../lib/runtime/onnx';
import type { ActivityDeps } from './deps';

export interface ModelContext {
  manifest: ModelManifest;
  plan: AssemblyPlan;
}

export function createModelContexts(deps: ActivityDeps) {
  const contexts = new Map<string, Promise<ModelContext>>();
  /** Sessions whose real input signature was checked against an assembly plan. */
  const checked = new WeakMap<object, Set<AssemblyPlan>>();

  /** Manifest + assembly plan for a model version and a pipeline's on-demand features. */
  function context(model: ResolvedModel, onDemand: readonly OnDemandRef[] = []): Promise<ModelContext> {
    const key = `${model.name}:${model.version}:${model.sha256}:${JSON.stringify(onDemand)}`;
    let p = contexts.get(key);
    if (!p) {
      p = (async () => {
        const manifest = await deps.registry.manifest(model.name, model.version);
        const plan = planAssembly(manifest, (await deps.onDemand).resolve(onDemand));
        checkSignature(plan, manifest.signature, `model ${model.name}:${model.version}`);
        return { manifest, plan };
      })();
      contexts.set(key, p);
      p.catch(() => contexts.delete(key));
    }
    return p;
  }

  /** Ensure the model is in the local cache (download + verify once per machine) and return its session, checked against the plan. */
  async function session(model: ResolvedModel, plan: AssemblyPlan): Promise<ortTypes.InferenceSession> {
    const { path: modelPath } = await deps.cache.ensure(model, deps.registry);
    const s = await deps.sessions.get(model.sha256, modelPath, { intraOpThreads: deps.config.ortThreads });
    let plans = checked.get(s);
    if (!plans) checked.set(s, (plans = new Set()));
    if (!plans.has(plan)) {
      checkSignature(plan, signatureOf(s), `model ${model.name}:${model.version} (${model.sha256.slice(0, 12)})`);
      plans.add(plan);
    }
    return s;
  }

  return { context, session };
}

export type ModelContexts = ReturnType<typeof createModelContexts>;
