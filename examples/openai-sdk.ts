/**
 * The official OpenAI client pointed at dsd: only `baseURL` changes.
 *
 *   npx tsx examples/openai-sdk.ts http://127.0.0.1:8080/v1
 */
import OpenAI from 'openai';

/** Lists the model, then asks for a short story, streamed. Returns the text. */
export async function main(
  baseURL = process.argv[2] ?? 'http://127.0.0.1:8080/v1',
  apiKey = process.env.DSD_API_KEY ?? 'unused',
): Promise<string> {
  const client = new OpenAI({ baseURL, apiKey });
  const models = await client.models.list();
  const model = models.data[0]?.id;
  if (model === undefined) throw new Error('dsd serves no model');
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Tell me a story about a little dog.' }],
    max_tokens: 48,
    temperature: 0,
    stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await main());
}
