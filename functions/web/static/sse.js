// Server-sent events read from a fetch response as they arrive
// (EventSource cannot POST or send a token). Only `data:` lines matter to
// Chat Completions; each event's data is one JSON object, and `[DONE]`
// ends the stream.

/** Yields each event's parsed data until `[DONE]` or the end of the body. */
export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    // An event ends at a blank line; CRLF and LF both occur in the wild.
    const parts = buffered.split(/\r?\n\r?\n/);
    buffered = parts.pop();
    for (const part of parts) {
      const data = dataOf(part);
      if (data === undefined) continue;
      if (data === "[DONE]") {
        reader.cancel().catch(() => {});
        return;
      }
      yield JSON.parse(data);
    }
  }
  const data = dataOf(buffered);
  if (data !== undefined && data !== "[DONE]") yield JSON.parse(data);
}

function dataOf(event) {
  const lines = event.split(/\r?\n/).filter((line) => line.startsWith("data:"));
  if (lines.length === 0) return undefined;
  return lines.map((line) => line.slice(5).replace(/^ /, "")).join("\n");
}
