/** The handler every mode serves: a small JSON answer, as a health check or an HTTP publish's reply. */
export const handler = (): Response => Response.json({ ok: true, at: Date.now() });
export default { fetch: handler } satisfies Deno.ServeDefaultExport;
