/** N Workers with `reusePort` on one port, as roomcast's cluster runs them. Usage: workers.ts <port> <n> */
const port = Number(Deno.args[0]);
const n = Number(Deno.args[1] ?? 2);
await Promise.all(Array.from({ length: n }, () => {
  const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  worker.postMessage({ port });
  return new Promise((resolve) => worker.onmessage = resolve);
}));
console.log(`listening on http://127.0.0.1:${port}`);
