// Starts `loom serve` (LOOM_BIN, default model) on a free port for a test
// and stops it afterwards.
//   const server = await startServe(["--parallel", "2"]);  server.url ... await server.stop();
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

export const loomBin = process.env.LOOM_BIN;
if (!loomBin) throw new Error("LOOM_BIN is not set (the path of the built loom command)");

export async function startServe(args = []) {
  const proc = spawn(loomBin, ["serve", "--port", "0", "--threads", "1", "--quiet", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "", err = "";
  proc.stderr.on("data", (d) => { err += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("loom serve did not start within 30 s:\n" + err)), 30000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on http:\/\/[^ ]*:(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`loom serve exited (${code}):\n${err}`)); });
  });
  proc.removeAllListeners("exit");
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: proc.pid,
    stderr: () => err,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    // Resident memory of the server process in kB (Linux).
    rssKb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))[1]),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      const r = await exited;
      clearTimeout(killer);
      return r;
    },
  };
}

// The value of a Prometheus sample line `name value` (no labels), or NaN.
export function metric(text, name) {
  const m = new RegExp(`^${name.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}
