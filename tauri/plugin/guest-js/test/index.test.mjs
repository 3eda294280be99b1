// The guest-js API against a stand-in of the Tauri core (node --test): the commands and
// arguments it sends, and that a consent question is refused unless onConsent agrees.
import { test } from "node:test";
import assert from "node:assert/strict";

import * as trellis from "../index.js";

function fakeTauri() {
  const calls = [];
  class Channel {
    constructor() {
      this.onmessage = () => {};
    }
  }
  const core = {
    Channel,
    invoke: async (command, args) => {
      calls.push({ command, args });
      return command === "plugin:trellis|install" ? { installed: [] } : null;
    },
  };
  const event = { listen: async (name, handler) => ({ name, handler }) };
  trellis.useTauri({ core, event });
  return calls;
}

async function installAndAsk(options) {
  const calls = fakeTauri();
  await trellis.install("acme.clock", options);
  const channel = calls[0].args.onEvent;
  await channel.onmessage({ kind: "consent", id: 7, disclosure: { plugin: "acme.clock", version: "1.0.0", permissions: [] } });
  return calls;
}

test("install sends the plugins and a channel to the install command", async () => {
  const calls = fakeTauri();
  await trellis.install(["acme.clock@^1", "acme.time-core"]);
  assert.equal(calls[0].command, "plugin:trellis|install");
  assert.deepEqual(calls[0].args.plugins, ["acme.clock@^1", "acme.time-core"]);
  assert.equal(typeof calls[0].args.onEvent.onmessage, "function");
});

test("a consent question without onConsent is refused", async () => {
  const calls = await installAndAsk({});
  assert.deepEqual(calls[1], { command: "plugin:trellis|answer_consent", args: { id: 7, agree: false } });
});

test("onConsent resolving to true agrees; anything else refuses", async () => {
  let calls = await installAndAsk({ onConsent: async (d) => d.plugin === "acme.clock" });
  assert.deepEqual(calls[1].args, { id: 7, agree: true });
  calls = await installAndAsk({ onConsent: () => "yes" });
  assert.deepEqual(calls[1].args, { id: 7, agree: false }, "only true agrees");
});

test("an onConsent that throws refuses and still answers", async () => {
  const calls = await installAndAsk({
    onConsent: () => {
      throw new Error("dialog crashed");
    },
  });
  assert.deepEqual(calls[1].args, { id: 7, agree: false });
});

test("events reach onEvent in order and are not answered", async () => {
  const calls = fakeTauri();
  const seen = [];
  await trellis.update([], { onEvent: (m) => seen.push(m.event.event) });
  const channel = calls[0].args.onEvent;
  await channel.onmessage({ kind: "event", event: { event: "resolving" } });
  await channel.onmessage({ kind: "event", event: { event: "done" } });
  assert.deepEqual(seen, ["resolving", "done"]);
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].args.plugins, []);
});

test("remove passes cascade; setPolicy fills the absent fields", async () => {
  const calls = fakeTauri();
  await trellis.remove("acme.clock", { cascade: true });
  await trellis.setPolicy({ mode: "auto" });
  assert.equal(calls[0].args.cascade, true);
  assert.deepEqual(calls[1].args, { plugin: null, mode: "auto", channel: null, reset: false });
});

test("without a Tauri API the error says what to set", async () => {
  trellis.useTauri(null);
  assert.throws(() => trellis.status(), /withGlobalTauri/);
});
