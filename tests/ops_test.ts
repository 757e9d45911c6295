/**
 * The operations files in deploy/ (issue 24): checked as far as this machine can check them. The
 * systemd unit by `systemd-analyze verify` (no warning); the nginx example by `nginx -t` with a
 * throw-away certificate in place of Let's Encrypt's; the Dockerfile by reading it (no Docker daemon
 * here): every COPY source exists, its command is `deno task start`, its health check and ENV
 * agree, and its dependency step (`deno install --frozen`) runs on this checkout; the Caddyfile by
 * reading it (no Caddy binary here). nginx comes from Debian (`apt-get install nginx`); missing, the
 * test is skipped locally and fails in CI.
 */
import assert from "node:assert/strict";
import { skipping } from "./_skips.ts";

const root = new URL("../", import.meta.url).pathname;
const inCI = Deno.env.get("CI") === "true";
const read = (path: string) => Deno.readTextFileSync(`${root}${path}`);

async function run(command: string, args: string[], cwd = root): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(command, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, out: decode(output.stdout) + decode(output.stderr) };
}

function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

Deno.test({
  name: "deploy/roomcast.service: systemd-analyze verify finds nothing to say",
  ignore: !installed("/usr/bin/systemd-analyze") && !inCI,
  async fn() {
    const { code, out } = await run("systemd-analyze", ["verify", `${root}deploy/roomcast.service`]);
    assert.equal(code, 0, out);
    assert.equal(out.trim(), "", "no warning, not even an ignored line");
    const unit = read("deploy/roomcast.service");
    assert.match(unit, /^ExecStart=\/usr\/bin\/deno task start$/m, "the README's command");
    assert.match(unit, /ROOMCAST_TRUSTED_PROXIES=127\.0\.0\.1/, "trusts the local proxy the examples set up");
  },
});

if (!installed("/usr/sbin/nginx") && !inCI) skipping("nginx", "apt-get install -y nginx");
Deno.test({
  name: "deploy/nginx.conf: nginx -t accepts it (TLS, WebSocket upgrade, unbuffered SSE)",
  ignore: !installed("/usr/sbin/nginx") && !inCI,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const cert = await run("openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=chat.example.com",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ]);
      assert.equal(cert.code, 0, cert.out);
      const site = read("deploy/nginx.conf")
        .replace(/\/etc\/letsencrypt\/live\/chat\.example\.com\/fullchain\.pem/, `${dir}/cert.pem`)
        .replace(/\/etc\/letsencrypt\/live\/chat\.example\.com\/privkey\.pem/, `${dir}/key.pem`);
      assert.match(site, /proxy_set_header Upgrade \$http_upgrade;/);
      assert.match(site, /proxy_buffering off;/);
      await Deno.writeTextFile(`${dir}/roomcast.conf`, site);
      await Deno.writeTextFile(
        `${dir}/nginx.conf`,
        `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\n` +
          `http {\n  access_log off;\n  client_body_temp_path ${dir};\n  include ${dir}/roomcast.conf;\n}\n`,
      );
      const { code, out } = await run("/usr/sbin/nginx", ["-t", "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`]);
      assert.equal(code, 0, out);
      assert.match(out, /syntax is ok/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("deploy/Dockerfile: its sources exist, it runs `deno task start`, its dependency step works here", async () => {
  const lines = read("deploy/Dockerfile").split("\n").filter((line) => line.trim() && !line.startsWith("#"));
  const known = new Set(["FROM", "WORKDIR", "COPY", "RUN", "ENV", "VOLUME", "USER", "EXPOSE", "HEALTHCHECK", "CMD"]);
  for (const line of lines) assert.ok(known.has(line.split(" ")[0] as string), `unexpected instruction: ${line}`);
  for (const line of lines.filter((l) => l.startsWith("COPY "))) {
    const sources = line.split(/\s+/).slice(1, -1);
    for (const source of sources) assert.ok(installedOrDir(`${root}${source}`), `COPY source ${source} exists`);
  }
  const copied = lines.filter((l) => l.startsWith("COPY ")).flatMap((l) => l.split(/\s+/).slice(1, -1));
  // What main.ts imports at run time is all copied (tests, bench and docs are not needed).
  for (const needed of ["deno.json", "deno.lock", "main.ts", "lib/", "routes/", "static/"]) {
    assert.ok(copied.includes(needed), `${needed} is copied`);
  }
  assert.ok(lines.includes('CMD ["deno", "task", "start"]'), "the same command as the README's");
  const env = lines.find((l) => l.startsWith("ENV ")) ?? "";
  assert.match(env, /HOSTNAME=0\.0\.0\.0/);
  const port = /PORT=(\d+)/.exec(env)?.[1];
  assert.ok(lines.includes(`EXPOSE ${port}`), "EXPOSE is the PORT set");
  assert.match(lines.find((l) => l.startsWith("HEALTHCHECK")) ?? "", new RegExp(`127\\.0\\.0\\.1:${port}/healthz`));
  const from = /^FROM denoland\/deno:(\d+)\./.exec(lines[0] ?? "")?.[1];
  assert.equal(from, Deno.version.deno.split(".")[0], "the image's Deno major is the one tested here");
  // The image's RUN step, on this checkout: the lock file covers every dependency main.ts needs.
  const install = await run(Deno.execPath(), ["install", "--frozen", "--entrypoint", "main.ts"]);
  assert.equal(install.code, 0, install.out);
});

Deno.test("deploy/Caddyfile: proxies to roomcast's port with SSE flushed at once (no Caddy here to run it)", () => {
  const caddy = read("deploy/Caddyfile");
  const body = caddy.split("\n").filter((line) => !line.trim().startsWith("#")).join("\n");
  assert.equal([...body].filter((c) => c === "{").length, [...body].filter((c) => c === "}").length, "braces pair");
  assert.match(body, /reverse_proxy 127\.0\.0\.1:8000 \{/);
  assert.match(body, /flush_interval -1/);
  assert.doesNotMatch(body, /\bencode\b/, "no compression: it would hold back event streams");
});

function installedOrDir(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
