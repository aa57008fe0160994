import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** Yields the `data` field of each server-sent event in a byte stream. */
export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const pending: string[] = [];
  const parser = createParser({ onEvent: (event: EventSourceMessage) => pending.push(event.data) });
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    while (pending.length > 0) yield pending.shift() as string;
  }
  parser.feed(decoder.decode());
  // A final event without its blank line still counts: some servers end the stream that way.
  parser.feed('\n\n');
  while (pending.length > 0) yield pending.shift() as string;
}
