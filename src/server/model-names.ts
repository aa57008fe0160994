import type { ModelNamesConfig } from '../config/types.js';

/**
 * The name dsd serves its one model under: DSD_SERVED_MODEL_NAME, else the target's own name with
 * any filesystem path taken off (llama-server reports the model file's path).
 */
export function servedModelName(names: ModelNamesConfig, targetModelId: string): string {
  return names.servedName ?? targetModelId.split(/[\\/]/).pop() ?? targetModelId;
}

/**
 * Whether a request's `model` names the served model: the served name, the target's own name,
 * an alias, or anything at all when DSD_ACCEPT_ANY_MODEL is on (OpenAI tools that send a fixed name).
 */
export function acceptsModel(names: ModelNamesConfig, targetModelId: string, requested: string): boolean {
  return (
    names.acceptAny ||
    requested === targetModelId ||
    requested === servedModelName(names, targetModelId) ||
    names.aliases.includes(requested)
  );
}
