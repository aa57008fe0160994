import { seededRng } from '../src/speculative/sampling.js';

/** Story openings for the real-model tests (the test models are trained on children's stories). */
export const STORY_PROMPTS = [
  'Once upon a time',
  'One day, a little girl named Lily',
  'Tom and his dog went to the park.',
  'The sun was shining and the birds were singing.',
  'There was a big red ball in the garden.',
  'Sara wanted to bake a cake for her mom.',
  'Once upon a time, there was a tiny bird',
  'Ben found a shiny rock under the tree.',
  'The cat was very hungry.',
  'Mom said, "Time for bed!"',
  'Lucy liked to draw pictures of flowers.',
  'A big truck came down the street.',
  'The little boat sailed on the lake.',
  'Max and Mia were best friends.',
  'It was a rainy day and Tim was sad.',
  'The old man had a magic hat.',
  'Anna saw a butterfly in the park.',
  'Once there was a happy frog who lived in a pond.',
  'The dog barked at the mailman.',
  'Jack wanted to climb the tall tree.',
];

const STORY_WORDS = ['dog', 'cat', 'sun', 'tree', 'ball', 'girl', 'boy', 'park', 'red', 'big', 'happy', 'bird', 'fish'];

/**
 * A prompt of `words` story words drawn with a seeded generator: each seed gives its own (the
 * cache-isolation tests need prompts that no earlier request sent), the same seed the same.
 */
export function freshWordPrompt(seed: number, words: number): string {
  const rng = seededRng(seed * 7_919 + 17);
  return Array.from({ length: words }, () => STORY_WORDS[Math.floor(rng() * STORY_WORDS.length)]).join(' ');
}
