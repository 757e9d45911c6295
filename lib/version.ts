/** roomcast's version: deno.json's `version`, shown in `/healthz` and the start line (CHANGELOG.md
 * says what each one holds). */
import project from "../deno.json" with { type: "json" };

export const VERSION: string = project.version;
