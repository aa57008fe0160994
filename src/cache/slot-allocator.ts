import { LRUCache } from 'lru-cache';

/**
 * Conversation → server slot, least recently used first: a conversation keeps its slot (so the
 * slot's KV cache holds its context); a new one takes the slot used longest ago. Unlike hashing
 * conversations onto slots, two live conversations never share a slot while free ones exist.
 */
export class SlotAllocator {
  private readonly owners: LRUCache<string, number>;
  private readonly lastUse: number[];
  private clock = 0;

  constructor(readonly slots: number) {
    this.owners = new LRUCache({ max: Math.max(1, slots) });
    this.lastUse = Array.from({ length: slots }, () => -1);
  }

  /** The slot for a conversation. */
  slotFor(conversation: string): number {
    this.clock += 1;
    let slot = this.owners.get(conversation);
    if (slot === undefined) {
      slot = this.lastUse.indexOf(Math.min(...this.lastUse));
      for (const [key, owned] of this.owners.entries()) if (owned === slot) this.owners.delete(key);
      this.owners.set(conversation, slot);
    }
    this.lastUse[slot] = this.clock;
    return slot;
  }
}
