import type { Rng } from '../speculative/sampling.js';

/** A distribution of non-negative numbers, as scenarios write it. */
export type Distribution =
  | { kind: 'constant'; value: number }
  | { kind: 'uniform'; min: number; max: number }
  | { kind: 'exponential'; mean: number }
  | { kind: 'normal'; mean: number; sd: number };

/** Draws from a distribution (normal is clipped at 0). */
export function draw(d: Distribution, rng: Rng): number {
  switch (d.kind) {
    case 'constant':
      return d.value;
    case 'uniform':
      return d.min + (d.max - d.min) * rng();
    case 'exponential':
      return -Math.log(1 - rng()) * d.mean;
    case 'normal': {
      const u = Math.max(1e-12, rng());
      const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
      return Math.max(0, d.mean + d.sd * z);
    }
  }
}

/** The mean of a distribution. */
export function meanOf(d: Distribution): number {
  switch (d.kind) {
    case 'constant':
      return d.value;
    case 'uniform':
      return (d.min + d.max) / 2;
    case 'exponential':
      return d.mean;
    case 'normal':
      return d.mean;
  }
}
