import { InferflowError } from '../errors';

/** A conditional write lost: the object exists (create-only) or changed (compare-and-swap). */
export class PreconditionFailedError extends InferflowError {
  readonly type = 'PreconditionFailed';
  readonly permanent = true;
}
