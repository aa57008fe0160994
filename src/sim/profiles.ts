/**
 * Device profiles: what a target's step and a draft's token cost on a given device, as data
 * (`examples/sim/profiles/*.json`), so a scenario says "an H100 running an 8 B model" instead of
 * two bare numbers. Each profile says where its figures come from: measured here, or published.
 */

/**
 * A target's step cost as a function of what the step holds:
 *
 *   stepMs = fixedMs + max(weightsReadMs, perPositionMs × positions) + perSequenceMs × sequences
 *
 * `weightsReadMs` is the memory-bandwidth floor (the weights read once per step, whatever the
 * batch): on a GPU a step of a few positions costs about the same as one, because compute hides
 * under it; on a CPU compute dominates and the floor is 0. `perSequenceMs` is what each sequence
 * adds on its own (its KV reads, its output row and sampling).
 */
export interface StepCost {
  fixedMs: number;
  perPositionMs: number;
  perSequenceMs?: number;
  weightsReadMs?: number;
}

/** Where a profile's figures come from. */
export type ProfileOrigin =
  | { kind: 'measured'; how: string }
  /** Published figures; `sources` cite them (model, device, batch, ms per step). */
  | { kind: 'published'; sources: string[] };

/** A target device running a model. */
export interface TargetProfile {
  kind: 'target';
  name: string;
  origin: ProfileOrigin;
  step: StepCost;
}

/** A draft model on an edge device. */
export interface DraftProfile {
  kind: 'draft';
  name: string;
  origin: ProfileOrigin;
  draftMsPerToken: number;
  /** Once per draft request, however many tokens it drafts (an HTTP exchange, a sampler reset). */
  draftMsPerRequest?: number;
  draftMsPerContextToken?: number;
  draftPrefillMsPerToken?: number;
}

/** A device profile file. */
export type DeviceProfile = TargetProfile | DraftProfile;

/** A step's cost under a profile. */
export function stepMs(c: StepCost, positions: number, sequences: number): number {
  return c.fixedMs + Math.max(c.weightsReadMs ?? 0, c.perPositionMs * positions) + (c.perSequenceMs ?? 0) * sequences;
}

/**
 * The same cost as a verifier prices it (a fixed part and a part per position): below the
 * bandwidth floor a position is nearly free, so pricing every position at `perPositionMs` and the
 * floor as fixed errs toward verifying a little too much, never toward starving the window.
 */
export function linearStepCost(c: StepCost): { fixedMs: number; positionMs: number } {
  return { fixedMs: c.fixedMs + (c.weightsReadMs ?? 0) + (c.perSequenceMs ?? 0), positionMs: c.perPositionMs };
}

const nonNegative = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** Checks a parsed profile file; every problem at once, naming the file. */
export function parseProfile(raw: unknown, where: string): DeviceProfile {
  if (typeof raw !== 'object' || raw === null) throw new Error(`${where}: a profile is a JSON object`);
  const p = raw as Partial<Omit<TargetProfile, 'kind'> & Omit<DraftProfile, 'kind'>> & { kind?: unknown };
  const errors: string[] = [];
  if (typeof p.name !== 'string') errors.push("'name' (a string) is required");
  const origin = p.origin as ProfileOrigin | undefined;
  if (origin?.kind === 'published') {
    if (!Array.isArray(origin.sources) || origin.sources.length === 0)
      errors.push('a published profile cites its sources (origin.sources)');
  } else if (origin?.kind !== 'measured' || typeof origin.how !== 'string') {
    errors.push("'origin' is { kind: 'measured', how } or { kind: 'published', sources: [...] }");
  }
  if (p.kind === 'target') {
    const s = p.step;
    if (s === undefined || !nonNegative(s.fixedMs) || !nonNegative(s.perPositionMs))
      errors.push('a target profile needs step.fixedMs and step.perPositionMs (ms, ≥ 0)');
    for (const key of ['perSequenceMs', 'weightsReadMs'] as const)
      if (s?.[key] !== undefined && !nonNegative(s[key])) errors.push(`step.${key} is ms, ≥ 0`);
  } else if (p.kind === 'draft') {
    if (!nonNegative(p.draftMsPerToken)) errors.push('a draft profile needs draftMsPerToken (ms, ≥ 0)');
    for (const key of ['draftMsPerRequest', 'draftMsPerContextToken', 'draftPrefillMsPerToken'] as const)
      if (p[key] !== undefined && !nonNegative(p[key])) errors.push(`${key} is ms, ≥ 0`);
  } else {
    errors.push("'kind' is 'target' or 'draft'");
  }
  if (errors.length > 0) throw new Error(`${where}: ${errors.join('; ')}`);
  return p as DeviceProfile;
}
