/** A uniform random source on [0, 1). */
export type Rng = () => number;

/** A token id with its probability under some distribution. */
export interface TokenProb {
  id: number;
  prob: number;
}

/** Seeded, fast, good-enough PRNG (mulberry32) for reproducible tests and simulations. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws an id from a distribution given as (id, prob) pairs; probabilities need not sum to 1. */
export function sampleFrom(dist: readonly TokenProb[], rng: Rng): number {
  let total = 0;
  for (const t of dist) total += t.prob;
  if (!(total > 0)) throw new Error('cannot sample from an empty distribution');
  let r = rng() * total;
  for (const t of dist) {
    r -= t.prob;
    if (r < 0) return t.id;
  }
  return (dist[dist.length - 1] as TokenProb).id;
}

/** The most probable id (lowest id on ties, like a stable argmax). */
export function argmax(dist: readonly TokenProb[]): number {
  let best: TokenProb | undefined;
  for (const t of dist)
    if (best === undefined || t.prob > best.prob || (t.prob === best.prob && t.id < best.id)) best = t;
  if (best === undefined) throw new Error('argmax of an empty distribution');
  return best.id;
}

/** Sampling settings of the llama.cpp chain dsd requests: top-k, top-p, min-p, then temperature. */
export interface TransformParams {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
}

/**
 * The distribution a llama.cpp sampler chain `[top_k, top_p, min_p, temperature]` actually
 * samples from, given the raw (temperature 1) probabilities. Truncation is decided on the raw
 * distribution, temperature reshapes what survives. Temperature 0 puts all mass on the argmax.
 */
export function transformDistribution(raw: readonly TokenProb[], p: TransformParams): TokenProb[] {
  let cands = [...raw].filter((t) => t.prob > 0).sort((a, b) => b.prob - a.prob || a.id - b.id);
  if (cands.length === 0) return [];
  if (p.temperature <= 0) return [{ id: (cands[0] as TokenProb).id, prob: 1 }];
  if (p.topK > 0) cands = cands.slice(0, p.topK);
  const total = cands.reduce((s, t) => s + t.prob, 0);
  if (p.topP < 1) {
    let cum = 0;
    const kept: TokenProb[] = [];
    for (const t of cands) {
      kept.push(t);
      cum += t.prob / total;
      if (cum >= p.topP) break;
    }
    cands = kept;
  }
  if (p.minP > 0) {
    const threshold = (cands[0] as TokenProb).prob * p.minP;
    cands = cands.filter((t) => t.prob >= threshold);
  }
  const scaled = cands.map((t) => ({ id: t.id, w: Math.exp(Math.log(t.prob) / p.temperature) }));
  const z = scaled.reduce((s, t) => s + t.w, 0);
  return scaled.map((t) => ({ id: t.id, prob: t.w / z }));
}
