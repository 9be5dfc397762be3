import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AgentConfigError, DEFAULT_REBOOT_COMMAND, parseAgentConfig, parseCommand } from "../../node-agent/config";

const base = {
  ROLLCALL_URL: "https://rollcall.example.net",
  ROLLCALL_FUNCTION_KEY: "key",
  ROLLCALL_CLUSTER: "prod",
  NODE_NAME: "aks-nodepool1-12345678-vmss000000",
};

function problemWith(env: Record<string, string | undefined>): string {
  try {
    parseAgentConfig(env);
  } catch (error) {
    assert.ok(error instanceof AgentConfigError);
    return error.variable;
  }
  assert.fail("the configuration was accepted");
}

describe("the agent's configuration", () => {
  it("uses kured's defaults: the sentinel file, systemd reboot in the host's namespaces, the kernel boot id", () => {
    const config = parseAgentConfig(base);
    assert.equal(config.sentinelFile, "/var/run/reboot-required");
    assert.equal(config.sentinelCommand, undefined);
    assert.deepEqual(config.rebootCommand, DEFAULT_REBOOT_COMMAND);
    assert.deepEqual(DEFAULT_REBOOT_COMMAND, ["nsenter", "-m/proc/1/ns/mnt", "--", "/bin/systemctl", "reboot"]);
    assert.equal(config.bootIdFile, "/proc/sys/kernel/random/boot_id");
    assert.equal(config.tokenFile, "/var/run/secrets/rollcall/token");
    assert.equal(config.intervalScale, 1);
    assert.equal(config.watchPollMs, 5000, "the boot id, on procfs, is read every 5 s");
    assert.equal(config.httpClient, "curl", "check-ins go through curl, keeping Node's TLS out of the agent's memory");
  });

  it("takes Node's http module for check-ins when asked, and nothing else", () => {
    assert.equal(parseAgentConfig({ ...base, ROLLCALL_HTTP_CLIENT: "node" }).httpClient, "node");
    assert.equal(problemWith({ ...base, ROLLCALL_HTTP_CLIENT: "wget" }), "ROLLCALL_HTTP_CLIENT");
  });

  it("names the missing variable", () => {
    for (const name of Object.keys(base)) assert.equal(problemWith({ ...base, [name]: undefined }), name);
  });

  it("names the variable holding a bad value", () => {
    assert.equal(problemWith({ ...base, ROLLCALL_URL: "not a url" }), "ROLLCALL_URL");
    assert.equal(problemWith({ ...base, ROLLCALL_URL: "ftp://x" }), "ROLLCALL_URL");
    assert.equal(problemWith({ ...base, NODE_NAME: "Node_1" }), "NODE_NAME");
    assert.equal(problemWith({ ...base, ROLLCALL_CLUSTER: "prod.eu" }), "ROLLCALL_CLUSTER");
    assert.equal(problemWith({ ...base, ROLLCALL_JITTER: "2" }), "ROLLCALL_JITTER");
    assert.equal(problemWith({ ...base, ROLLCALL_BACKOFF_BASE_SECONDS: "-1" }), "ROLLCALL_BACKOFF_BASE_SECONDS");
    assert.equal(problemWith({ ...base, ROLLCALL_BACKOFF_BASE_SECONDS: "60", ROLLCALL_BACKOFF_MAX_SECONDS: "10" }), "ROLLCALL_BACKOFF_MAX_SECONDS");
    assert.equal(problemWith({ ...base, ROLLCALL_REBOOT_COMMAND: "[1,2]" }), "ROLLCALL_REBOOT_COMMAND");
  });

  it("bounds every setting, so that no interval can overflow a timer or hammer the orchestrator", () => {
    const refused: Record<string, string[]> = {
      ROLLCALL_BACKOFF_BASE_SECONDS: ["0.01", "3601", "NaN", "Infinity"],
      ROLLCALL_BACKOFF_MAX_SECONDS: ["86401", "1e12"],
      ROLLCALL_REQUEST_TIMEOUT_SECONDS: ["0.5", "301"],
      ROLLCALL_JITTER: ["-0.1", "0.6"],
      ROLLCALL_INTERVAL_SCALE: ["0.001", "1.5", "0"],
      ROLLCALL_WATCH_POLL_SECONDS: ["0.01", "3601", "NaN"],
      ROLLCALL_FUNCTION_KEY: ["key\nx-injected: 1", "k".repeat(1025)],
    };
    for (const [name, values] of Object.entries(refused)) for (const value of values) assert.equal(problemWith({ ...base, [name]: value }), name, `${name}=${value}`);
    const widest = parseAgentConfig({ ...base, ROLLCALL_BACKOFF_BASE_SECONDS: "3600", ROLLCALL_BACKOFF_MAX_SECONDS: "86400", ROLLCALL_REQUEST_TIMEOUT_SECONDS: "300", ROLLCALL_JITTER: "0.5", ROLLCALL_INTERVAL_SCALE: "0.01", ROLLCALL_WATCH_POLL_SECONDS: "3600" });
    assert.ok(widest.backoffMaxMs <= 2 ** 31 - 1 && widest.requestTimeoutMs <= 2 ** 31 - 1 && widest.watchPollMs <= 2 ** 31 - 1);
  });

  it("refuses plain http outside loopback, where the key and token would travel in clear", () => {
    assert.equal(problemWith({ ...base, ROLLCALL_URL: "http://rollcall.example.net" }), "ROLLCALL_URL");
    assert.equal(parseAgentConfig({ ...base, ROLLCALL_URL: "http://127.0.0.1:7071/" }).url, "http://127.0.0.1:7071");
  });

  it("sends no bearer token when the token file is set to empty (local simulation)", () => {
    assert.equal(parseAgentConfig({ ...base, ROLLCALL_TOKEN_FILE: "" }).tokenFile, undefined);
  });

  it("takes commands as words or as a JSON array", () => {
    assert.deepEqual(parseCommand("/bin/test -f /x"), ["/bin/test", "-f", "/x"]);
    assert.deepEqual(parseCommand('["sh","-c","test -f /x"]'), ["sh", "-c", "test -f /x"]);
    assert.equal(parseCommand("   "), undefined);
    const config = parseAgentConfig({ ...base, ROLLCALL_SENTINEL_COMMAND: '["sh","-c","exit 0"]' });
    assert.deepEqual(config.sentinelCommand, ["sh", "-c", "exit 0"]);
  });
});
