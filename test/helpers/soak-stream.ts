import { request } from 'node:http';

/** One streamed completion read to its end (slowly, when `slow`): its text and whether it errored. */
export function soakStream(
  baseUrl: string,
  prompt: string,
  o: { slow: boolean; maxTokens: number; hungMs: number },
): Promise<{ text: string; error: boolean; errorText?: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: 'm', prompt, max_tokens: o.maxTokens, temperature: 0, stream: true });
    const req = request(
      `${baseUrl}/v1/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(o.hungMs) },
      (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          raw += d;
          if (o.slow) {
            // A slow reader: take a chunk, then stop reading for a while (TCP back-pressure to dsd).
            res.pause();
            setTimeout(() => res.resume(), 40);
          }
        });
        res.on('end', () => {
          if (res.statusCode !== 200)
            return resolve({
              text: '',
              error: /"error"/.test(raw),
              errorText: `${res.statusCode}: ${raw.slice(0, 300)}`,
            });
          let text = '';
          let error = false;
          let errorText: string | undefined;
          for (const event of raw.split('\n\n')) {
            const data = event.replace(/^data: /, '');
            if (data === '' || data === '[DONE]') continue;
            const chunk = JSON.parse(data);
            if (chunk.error !== undefined) {
              error = true;
              errorText ??= JSON.stringify(chunk.error).slice(0, 300);
            } else text += chunk.choices?.[0]?.text ?? '';
          }
          resolve(errorText === undefined ? { text, error } : { text, error, errorText });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
