// realtalk browser client: one RTCPeerConnection to the agent process, microphone (and optional
// camera) up, agent voice down, and a data channel "events" for transcripts, state and metrics.
// Plain script, no build step, no external assets.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("conn-status"), banner: $("banner"), orb: $("orb"), agentState: $("agent-state"),
    userState: $("user-state"), lastLatency: $("last-latency"), connect: $("connect"),
    mute: $("mute"), camera: $("camera"), interrupt: $("interrupt"), mic: $("mic"),
    level: $("level"), levelBar: $("level-bar"), preview: $("preview"),
    transcript: $("transcript"), empty: $("transcript-empty"), form: $("text-form"),
    text: $("text"), send: $("send"), metricsBody: document.querySelector("#metrics tbody"),
    totalIn: $("total-in"), totalOut: $("total-out"), totalCost: $("total-cost"),
    log: $("log"), logCount: $("log-count"), remoteAudio: $("remote-audio"),
  };

  const STATE_LABELS = {
    initializing: "Starting…", listening: "Listening", thinking: "Thinking",
    speaking: "Speaking", closed: "Ended",
  };
  const MAX_LOG = 400;

  // Everything a test (or a curious developer in the console) may want to read.
  const state = {
    connected: false, agentState: "idle", userState: null, transcripts: [], metrics: [],
    events: [], errors: [], connectionId: null, remotePeak: 0,
    // Behind a gateway (docs/scaling.md) the answer names a session; if its worker goes away
    // the page offers again with it and the conversation resumes on another worker.
    sessionId: null, resumes: 0,
  };
  const STALL_MS = 4000; // no audio from the agent this long: its worker is gone
  const MAX_RESUME_TRIES = 5;
  let resuming = false;
  let stallTimer = null;

  let pc = null;
  let dc = null;
  let micStream = null;
  let camStream = null;
  let audioSender = null;
  let videoTransceiver = null;
  let audioCtx = null;
  let micAnalyser = null;
  let remoteAnalyser = null;
  let meterTimer = null;
  let turnCount = 0;
  let totals = { input: 0, output: 0, cost: 0 };
  const bubbles = new Map(); // role + item_id -> {li, textEl}
  const typedPending = []; // bubbles of typed messages, adopted by their transcription

  // ---- small helpers ---------------------------------------------------------------------

  function setStatus(kind, text) {
    ui.status.dataset.status = kind;
    ui.status.textContent = text;
  }

  function showBanner(text, kind = "error") {
    if (!text) { ui.banner.hidden = true; return; }
    ui.banner.dataset.kind = kind;
    ui.banner.textContent = text;
    ui.banner.hidden = false;
  }

  function logEvent(kind, detail, isError = false) {
    const entry = { t: Date.now(), kind, detail };
    state.events.push(entry);
    if (state.events.length > MAX_LOG) state.events.shift();
    const li = document.createElement("li");
    if (isError) li.className = "error";
    const time = document.createElement("time");
    time.textContent = new Date(entry.t).toLocaleTimeString([], { hour12: false });
    const k = document.createElement("span");
    k.className = "kind";
    k.textContent = kind;
    const full = typeof detail === "string" ? detail : JSON.stringify(detail);
    const shown = full.length > 240 ? `${full.slice(0, 240)}…` : full;
    if (shown !== full) li.title = full;
    li.append(time, k, document.createTextNode(shown));
    ui.log.prepend(li);
    while (ui.log.childElementCount > MAX_LOG) ui.log.lastElementChild.remove();
    ui.logCount.textContent = String(state.events.length);
  }

  function setAgentState(s) {
    state.agentState = s;
    ui.orb.dataset.state = s;
    ui.agentState.textContent = STATE_LABELS[s] || s;
    ui.interrupt.disabled = !(state.connected && (s === "speaking" || s === "thinking"));
  }

  function setControls(connected) {
    state.connected = connected;
    ui.connect.textContent = connected ? "Disconnect" : "Connect";
    ui.connect.classList.toggle("primary", !connected);
    ui.connect.classList.toggle("danger", connected);
    for (const el of [ui.mute, ui.camera, ui.text, ui.send]) el.disabled = !connected;
    if (!connected) {
      ui.interrupt.disabled = true;
      ui.mute.setAttribute("aria-pressed", "false");
      ui.mute.textContent = "Mute";
      ui.camera.setAttribute("aria-pressed", "false");
    }
  }

  // ---- transcript ------------------------------------------------------------------------

  function scrollTranscript() {
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }

  function addBubble(cls, who, text) {
    if (ui.empty) { ui.empty.remove(); ui.empty = null; }
    const li = document.createElement("li");
    li.className = `msg ${cls}`;
    const whoEl = document.createElement("span");
    whoEl.className = "who";
    whoEl.textContent = who;
    const textEl = document.createElement("div");
    textEl.className = "text";
    textEl.textContent = text;
    li.append(whoEl, textEl);
    ui.transcript.append(li);
    scrollTranscript();
    return { li, textEl };
  }

  function onTranscription(ev) {
    const role = ev.role === "user" ? "user" : "agent";
    const key = `${role}:${ev.item_id || "?"}`;
    let b = bubbles.get(key);
    if (!b && role === "user") {
      // A typed message may come back as the user's transcription: reuse its bubble.
      const i = typedPending.findIndex((p) => p.text === (ev.text || "").trim());
      if (i >= 0) b = typedPending.splice(i, 1)[0].bubble;
      if (b) { bubbles.set(key, b); return; }
    }
    if (ev.is_final && !(ev.text || "").trim()) {
      // Interrupted before a word was said (or nothing was heard): nothing to show.
      b?.li.remove();
      bubbles.delete(key);
      return;
    }
    if (!b) {
      b = addBubble(role, role === "user" ? "You" : "Agent", "");
      bubbles.set(key, b);
    }
    b.textEl.textContent = ev.text || (ev.is_final ? "" : "…");
    b.li.classList.toggle("interim", !ev.is_final);
    if (ev.interrupted) {
      // Cut off by the user: the text is what was heard, and says so.
      b.li.classList.add("cut");
      b.li.dataset.cut = "true";
      b.li.setAttribute("aria-label", "Agent, cut off");
    }
    if (ev.is_final) {
      state.transcripts.push({ role, text: ev.text || "", item_id: ev.item_id || null });
    }
    scrollTranscript();
  }

  function parsed(value) {
    if (typeof value !== "string") return value;
    try { return JSON.parse(value); } catch { return value; }
  }

  function readable(value, depth = 0) {
    // {"a": 1, "b": "x"} → "a 1, b x"; strings as they are; nesting shown shallowly.
    const v = parsed(value);
    if (v === null || v === undefined) return "";
    if (typeof v !== "object") return String(v);
    if (depth > 1) return "…";
    if (Array.isArray(v)) return v.map((x) => readable(x, depth + 1)).join(", ");
    return Object.entries(v).map(([k, x]) => `${k.replace(/_/g, " ")} ${readable(x, depth + 1)}`)
      .join(", ");
  }

  function onFunctionCall(ev) {
    const name = String(ev.name || "tool").replace(/_/g, " ");
    const args = readable(ev.arguments);
    const out = readable(ev.output);
    const b = addBubble(`tool${ev.is_error ? " error" : ""}`, "Tool",
      `${name}${args ? ` (${args})` : ""} → ${ev.is_error ? "failed: " : ""}${out}`);
    b.li.title = `${ev.name} ${typeof ev.arguments === "string" ? ev.arguments : JSON.stringify(ev.arguments)}`;
    b.li.setAttribute("aria-label", `Tool ${name} ${ev.is_error ? "failed" : "ran"}`);
  }

  // ---- metrics ---------------------------------------------------------------------------

  function firstNumber(obj, names) {
    for (const n of names) {
      const v = obj[n];
      if (typeof v === "number" && Number.isFinite(v)) return v;
    }
    return null;
  }

  function latencyOf(m) {
    // End of the user's speech to the first reply audio played (TurnMetrics.latency_ms).
    return firstNumber(m, ["latency_ms"]);
  }

  function tokensOf(m, kind) {
    const direct = firstNumber(m, [`${kind}_tokens`, `total_${kind}_tokens`]);
    if (direct !== null) return direct;
    const usage = m.usage || m.tokens;
    if (usage && typeof usage === "object") {
      return firstNumber(usage, [`${kind}_tokens`, kind]);
    }
    return null;
  }

  function onMetrics(m) {
    // A turn the user did not start (the greeting, a say()) is not a user turn.
    const userTurn = m.user_speech_started_at != null || m.user_speech_end_at != null
      || m.latency_ms != null;
    if (userTurn) turnCount += 1;
    const label = userTurn ? String(turnCount) : "agent";
    const latency = latencyOf(m);
    const tin = tokensOf(m, "input");
    const tout = tokensOf(m, "output");
    // A local model has no prices: its cost is not a dollar figure.
    const cost = m.priced === false ? null : firstNumber(m, ["cost_usd", "cost"]);
    if (m.priced === false) state.unpriced = true;
    state.metrics.push({ turn: userTurn ? turnCount : null, latency_ms: latency, input_tokens: tin,
      output_tokens: tout, cost_usd: cost, raw: m });
    const tr = document.createElement("tr");
    if (!userTurn) tr.className = "agent-turn";
    const cells = [
      label,
      latency === null ? "—" : `${Math.round(latency)} ms`,
      tin === null ? "—" : String(tin),
      tout === null ? "—" : String(tout),
      cost === null ? (m.priced === false ? "local" : "—") : `$${cost.toFixed(4)}`,
    ];
    cells.forEach((text, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      td.textContent = text;
      tr.append(td);
    });
    tr.dataset.latency = latency === null ? "" : String(Math.round(latency));
    ui.metricsBody.append(tr);
    totals.input += tin || 0;
    totals.output += tout || 0;
    totals.cost += cost || 0;
    ui.totalIn.textContent = String(totals.input);
    ui.totalOut.textContent = String(totals.output);
    ui.totalCost.textContent = state.unpriced && totals.cost === 0 ? "local, no charge"
      : `$${totals.cost.toFixed(4)}`;
    if (latency !== null && probe.waits.length === 0) {
      // Until the page has measured a wait itself, show the agent's own figure.
      ui.lastLatency.hidden = false;
      ui.lastLatency.textContent = `${Math.round(latency)} ms`;
      ui.lastLatency.title = "Latency of the last turn, as the agent measured it";
    }
  }

  // ---- data channel ----------------------------------------------------------------------

  function onMessage(raw) {
    let ev;
    try { ev = JSON.parse(raw); } catch { logEvent("bad-message", String(raw), true); return; }
    const type = ev.type;
    const isInterim = type === "transcription" && !ev.is_final;
    if (!isInterim) {
      const { type: _t, ...rest } = ev;
      logEvent(type, rest, type === "error");
    }
    switch (type) {
      case "hello":
        state.connectionId = ev.connection_id || state.connectionId;
        if (ev.agent_state) setAgentState(ev.agent_state);
        if (ev.user_state) { state.userState = ev.user_state; ui.userState.textContent = ev.user_state; }
        break;
      case "agent_state_changed": setAgentState(ev.state); break;
      case "user_state_changed":
        state.userState = ev.state;
        ui.userState.textContent = ev.state === "speaking" ? "speaking" : "quiet";
        break;
      case "transcription": onTranscription(ev); break;
      case "function_call": onFunctionCall(ev); break;
      case "metrics": onMetrics(ev); break;
      case "error":
        state.errors.push(ev);
        showBanner(ev.message || "The agent reported an error.");
        // A fatal error ends the session: the agent's "closed" follows, but it can be lost as
        // the connection goes (a start that failed under load), and Chromium takes ~30 s to
        // notice a peer that is gone.
        if (ev.fatal) disconnect("error");
        break;
      case "reconnecting": showBanner("Connection to the model lost — reconnecting…", "info"); break;
      case "reconnected": showBanner(null); break;
      case "migrate": resume("the agent's server is shutting down"); break;
      case "closed":
        if (!state.errors.some((e) => e.fatal)) {
          showBanner(`The agent ended the session${ev.reason ? ` (${ev.reason})` : ""}.`, "info");
        }
        disconnect();
        break;
      default: break;
    }
  }

  function sendEvent(obj) {
    if (dc && dc.readyState === "open") { dc.send(JSON.stringify(obj)); return true; }
    return false;
  }

  // ---- audio: level meters ---------------------------------------------------------------

  function ensureAudioContext() {
    if (!audioCtx) audioCtx = new AudioContext();
    if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
    return audioCtx;
  }

  function analyserFor(stream) {
    const ctx = ensureAudioContext();
    const src = ctx.createMediaStreamSource(stream);
    const an = ctx.createAnalyser();
    an.fftSize = 1024;
    src.connect(an);
    return { src, an, buf: new Float32Array(an.fftSize) };
  }

  function rms(a) {
    if (!a) return 0;
    a.an.getFloatTimeDomainData(a.buf);
    let sum = 0;
    for (let i = 0; i < a.buf.length; i += 1) sum += a.buf[i] * a.buf[i];
    return Math.sqrt(sum / a.buf.length);
  }

  function startMeter() {
    stopMeter();
    // Styles are written only when a level changes: in a silence nothing is laid out again.
    let shownPct = -1;
    let shownRemote = "";
    meterTimer = setInterval(() => {
      const level = Math.min(1, rms(micAnalyser) * 4);
      const pct = Math.round(level * 100);
      if (pct !== shownPct) {
        shownPct = pct;
        ui.levelBar.style.width = `${pct}%`;
        // Stretch the gradient over the whole track, so colour means loudness, not bar length.
        if (pct > 0) ui.levelBar.style.backgroundSize = `${(100 / pct) * 100}% 100%`;
        ui.level.setAttribute("aria-valuenow", String(pct));
      }
      const remote = rms(remoteAnalyser);
      state.remotePeak = Math.max(state.remotePeak, remote);
      const orbLevel = Math.min(1, remote * 5).toFixed(2);
      if (orbLevel !== shownRemote) {
        shownRemote = orbLevel;
        ui.orb.style.setProperty("--level", orbLevel);
      }
    }, 60);
  }

  function stopMeter() {
    if (meterTimer) clearInterval(meterTimer);
    meterTimer = null;
    ui.levelBar.style.width = "0%";
    ui.orb.style.setProperty("--level", "0");
    ui.level.setAttribute("aria-valuenow", "0");
  }

  // ---- the user's real wait, measured in the page ---------------------------------------
  // From the end of the user's speech at the microphone to the first agent audio this page
  // plays, both read from the audio as it passes through one AudioContext (an AudioWorklet on
  // the audio thread, static/level-probe.js; 128-sample blocks, ~3 ms), so the figure holds
  // everything: uplink, turn detection, the model, downlink, jitter buffers. The agent's own
  // latency figure (metrics table) cannot see either end of that wait. Without AudioWorklet
  // (an old browser) the page shows the agent's figure instead.
  const LOUD = 0.02; // peak level of speech; room noise and the fake mic's silence are below
  const NEW_REPLY_AFTER_S = 0.3; // agent audio after this much quiet is the start of a reply
  const probe = { micEnd: null, counted: null, taps: [], waits: [], module: null };

  function probeModule(ctx) {
    if (!probe.module) probe.module = ctx.audioWorklet.addModule("static/level-probe.js");
    return probe.module;
  }

  async function tapLevels(stream, onChange) {
    const ctx = ensureAudioContext();
    if (!ctx.audioWorklet) return;
    try {
      await probeModule(ctx);
    } catch (err) {
      logEvent("latency probe", String(err), true);
      return;
    }
    const src = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "realtalk-level-probe", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { loud: LOUD, gapS: NEW_REPLY_AFTER_S },
    });
    const mute = ctx.createGain();
    mute.gain.value = 0; // the probe must reach the destination to run; it adds nothing
    node.port.onmessage = (e) => {
      // The block's context time to the wall clock, through the context's own output
      // timestamp (not the time this message got the main thread: late on a busy machine).
      const ts = ctx.getOutputTimestamp();
      const wall = ts.performanceTime === undefined ? performance.now()
        : ts.performanceTime + (e.data.t - ts.contextTime) * 1000;
      onChange(e.data.kind, e.data.t, performance.timeOrigin + wall);
    };
    src.connect(node); node.connect(mute); mute.connect(ctx.destination);
    probe.taps.push({ src, node, mute });
  }

  function onMicLevel(kind, t, wall) {
    if (kind === "offset") probe.micEnd = { t, wall };
  }

  function onAgentLevel(kind, t, wall) {
    if (kind !== "onset") return; // a reply starts: agent audio after a quiet spell
    const end = probe.micEnd;
    if (!end || end === probe.counted || t <= end.t) return;
    probe.counted = end;
    const waitMs = (t - end.t) * 1000;
    if (waitMs > 60000) return; // not an answer to that speech
    probe.waits.push({ speech_end_wall_ms: end.wall, agent_audio_wall_ms: wall, wait_ms: waitMs });
    ui.lastLatency.hidden = false;
    ui.lastLatency.textContent = `${Math.round(waitMs)} ms`;
    ui.lastLatency.title = "Your wait in the last turn: end of your speech at the microphone "
      + "to the agent's first audio played here";
  }

  function stopProbe() {
    for (const t of probe.taps) {
      t.node.port.onmessage = null;
      t.src.disconnect(); t.node.disconnect(); t.mute.disconnect();
    }
    probe.taps = [];
    probe.micEnd = null;
    probe.counted = null;
  }

  // ---- devices ---------------------------------------------------------------------------

  async function listMicrophones() {
    if (!navigator.mediaDevices?.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const mics = devices.filter((d) => d.kind === "audioinput");
    const current = ui.mic.value;
    ui.mic.replaceChildren();
    const def = document.createElement("option");
    def.value = "";
    def.textContent = "Default microphone";
    ui.mic.append(def);
    mics.forEach((d, i) => {
      if (!d.deviceId || d.deviceId === "default") return;
      const o = document.createElement("option");
      o.value = d.deviceId;
      o.textContent = d.label || `Microphone ${i + 1}`;
      ui.mic.append(o);
    });
    if ([...ui.mic.options].some((o) => o.value === current)) ui.mic.value = current;
  }

  async function openMicrophone() {
    const deviceId = ui.mic.value;
    const audio = {
      echoCancellation: true, noiseSuppression: true, autoGainControl: true,
      ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
    };
    return navigator.mediaDevices.getUserMedia({ audio, video: false });
  }

  async function switchMicrophone() {
    if (!pc || !audioSender) return;
    try {
      const stream = await openMicrophone();
      const track = stream.getAudioTracks()[0];
      track.enabled = ui.mute.getAttribute("aria-pressed") !== "true";
      await audioSender.replaceTrack(track);
      micStream?.getTracks().forEach((t) => t.stop());
      micStream = stream;
      micAnalyser = analyserFor(stream);
      tapLevels(stream, onMicLevel).catch(() => {});
      logEvent("microphone", track.label || "switched");
    } catch (err) {
      showBanner(`Could not switch microphone: ${err.message || err}`);
    }
  }

  // ---- connect / disconnect --------------------------------------------------------------

  function waitForIceGathering(peer, timeoutMs = 3000) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (peer.iceGatheringState === "complete") {
          peer.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      peer.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, timeoutMs); // host candidates are enough locally
    });
  }

  function pageToken() {
    const meta = document.querySelector('meta[name="realtalk-token"]');
    return meta ? meta.content : "";
  }

  async function fetchConfig() {
    try {
      const r = await fetch("api/config", { cache: "no-store" });
      if (r.ok) return await r.json();
    } catch { /* the defaults below are fine */ }
    return { iceServers: [] };
  }

  async function connect() {
    showBanner(null);
    setStatus("connecting", "Connecting…");
    ui.connect.disabled = true;
    setAgentState("initializing");
    try {
      if (!navigator.mediaDevices?.getUserMedia) {
        throw new Error("This browser cannot capture audio here (a secure context — https or localhost — is required).");
      }
      micStream = await openMicrophone();
      listMicrophones().catch(() => {});
      micAnalyser = analyserFor(micStream);
      tapLevels(micStream, onMicLevel).catch(() => {});
      startMeter();

      const config = await fetchConfig();
      pc = new RTCPeerConnection({ iceServers: config.iceServers || [] });
      const peer = pc;
      const micTrack = micStream.getAudioTracks()[0];
      audioSender = pc.addTransceiver(micTrack, { direction: "sendrecv", streams: [micStream] }).sender;
      // Negotiated now, filled by the camera toggle later (replaceTrack needs no renegotiation).
      videoTransceiver = pc.addTransceiver("video", { direction: "sendonly" });

      dc = pc.createDataChannel("events", { ordered: true });
      dc.onopen = () => { logEvent("channel", "open"); };
      dc.onclose = () => { logEvent("channel", "closed"); };
      const channel = dc;
      dc.onmessage = (e) => { if (dc === channel) onMessage(e.data); };

      pc.ontrack = (e) => {
        if (e.track.kind !== "audio") return;
        const stream = e.streams[0] || new MediaStream([e.track]);
        ui.remoteAudio.srcObject = stream;
        ui.remoteAudio.play().catch((err) => logEvent("autoplay", String(err), true));
        remoteAnalyser = analyserFor(stream);
        tapLevels(stream, onAgentLevel).catch(() => {});
      };
      pc.onconnectionstatechange = () => {
        if (pc !== peer) return;
        const s = peer.connectionState;
        logEvent("connection", s);
        if (s === "connected") {
          setStatus("connected", "Connected");
        } else if (s === "failed" && state.sessionId && !resuming) {
          resume("the connection to the agent failed");
        } else if (s === "failed") {
          if (!state.errors.some((e) => e.fatal)) showBanner("The connection to the agent failed.");
          disconnect("error");
        } else if (s === "disconnected") {
          setStatus("connecting", "Reconnecting…");
        }
      };

      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc);
      const resp = await fetch("api/offer", {
        method: "POST",
        // The token the server put in this page: no other site's page can start a session.
        headers: { "Content-Type": "application/json", "X-Realtalk-Token": pageToken() },
        body: JSON.stringify({
          sdp: pc.localDescription.sdp, type: pc.localDescription.type,
          ...(resuming && state.sessionId ? { session_id: state.sessionId } : {}),
        }),
      });
      const answer = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(answer.error || `The server answered ${resp.status}`);
      state.connectionId = answer.connection_id || null;
      state.sessionId = answer.session_id || null;
      if (answer.resumed) logEvent("resumed", `conversation resumed on ${answer.worker || "another worker"}`);
      if (state.sessionId) watchStall(peer);
      await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
      setControls(true);
      logEvent("offer", `answered (connection ${state.connectionId})`);
    } catch (err) {
      logEvent("error", String(err.message || err), true);
      if (resuming) throw err; // resume() tries again
      showBanner(`Could not connect: ${err.message || err}`);
      disconnect("error");
    } finally {
      ui.connect.disabled = false;
    }
  }

  // ---- resuming on another worker (behind a gateway) -------------------------------------

  function watchStall(peer) {
    if (stallTimer) clearInterval(stallTimer);
    let last = -1;
    let since = Date.now();
    let tick = Date.now();
    stallTimer = setInterval(async () => {
      const now = Date.now();
      if (now - tick > 2000) since = now; // the page itself was paused (background tab)
      tick = now;
      if (pc !== peer || resuming) return;
      const stats = await peer.getStats().catch(() => null);
      let packets = 0;
      stats?.forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "audio") packets = r.packetsReceived || 0; });
      if (packets !== last) { last = packets; since = Date.now(); return; }
      if (Date.now() - since > STALL_MS && peer.connectionState === "connected") {
        resume("no audio from the agent");
      }
    }, 500);
  }

  async function resume(reason) {
    if (resuming || !state.sessionId) return;
    resuming = true;
    state.resumes += 1;
    logEvent("resume", reason);
    showBanner(`Reconnecting: ${reason}…`, "info");
    const sessionId = state.sessionId;
    try {
      for (let attempt = 1; attempt <= MAX_RESUME_TRIES; attempt += 1) {
        disconnect("idle");
        state.sessionId = sessionId;
        try {
          await connect();
          showBanner(null);
          return;
        } catch (err) {
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
      showBanner("Could not resume the conversation; press Connect to start again.");
      disconnect("error");
    } finally {
      resuming = false;
    }
  }

  function disconnect(status = "idle") {
    if (stallTimer) clearInterval(stallTimer);
    stallTimer = null;
    if (!resuming) state.sessionId = null; // the user hung up: the next call is a new one
    if (dc && dc.readyState === "open") {
      try { dc.send(JSON.stringify({ type: "bye" })); } catch { /* closing anyway */ }
    }
    const peer = pc;
    pc = null;
    dc = null;
    audioSender = null;
    videoTransceiver = null;
    if (peer) setTimeout(() => peer.close(), 50); // let "bye" leave first
    micStream?.getTracks().forEach((t) => t.stop());
    camStream?.getTracks().forEach((t) => t.stop());
    micStream = null;
    camStream = null;
    micAnalyser = null;
    remoteAnalyser = null;
    stopProbe();
    ui.remoteAudio.srcObject = null;
    ui.preview.srcObject = null;
    ui.preview.hidden = true;
    stopMeter();
    setControls(false);
    setAgentState("idle");
    ui.agentState.textContent = "Not connected";
    ui.userState.textContent = "—";
    setStatus(status === "error" ? "error" : "idle", status === "error" ? "Error" : "Disconnected");
  }

  // ---- camera, mute, interrupt, text -----------------------------------------------------

  async function toggleCamera() {
    if (!videoTransceiver) return;
    const on = ui.camera.getAttribute("aria-pressed") !== "true";
    try {
      if (on) {
        camStream = await navigator.mediaDevices.getUserMedia({
          video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } },
        });
        await videoTransceiver.sender.replaceTrack(camStream.getVideoTracks()[0]);
        ui.preview.srcObject = camStream;
        ui.preview.hidden = false;
      } else {
        await videoTransceiver.sender.replaceTrack(null);
        camStream?.getTracks().forEach((t) => t.stop());
        camStream = null;
        ui.preview.srcObject = null;
        ui.preview.hidden = true;
      }
      ui.camera.setAttribute("aria-pressed", String(on));
      sendEvent({ type: "camera", on });
    } catch (err) {
      showBanner(`Camera unavailable: ${err.message || err}`);
    }
  }

  function toggleMute() {
    const muted = ui.mute.getAttribute("aria-pressed") !== "true";
    micStream?.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    ui.mute.setAttribute("aria-pressed", String(muted));
    ui.mute.textContent = muted ? "Unmute" : "Mute";
  }

  function sendText(e) {
    e.preventDefault();
    const text = ui.text.value.trim();
    if (!text) return;
    if (!sendEvent({ type: "text", text })) {
      showBanner("Not connected yet — the message was not sent.", "info");
      return;
    }
    const bubble = addBubble("user", "You", text);
    typedPending.push({ text, bubble });
    if (typedPending.length > 20) typedPending.shift();
    state.transcripts.push({ role: "user", text, item_id: null, typed: true });
    ui.text.value = "";
  }

  // ---- wiring ----------------------------------------------------------------------------

  ui.connect.addEventListener("click", () => { if (pc) disconnect(); else connect(); });
  ui.mute.addEventListener("click", toggleMute);
  ui.camera.addEventListener("click", toggleCamera);
  ui.interrupt.addEventListener("click", () => sendEvent({ type: "interrupt" }));
  ui.form.addEventListener("submit", sendText);
  ui.mic.addEventListener("change", switchMicrophone);
  navigator.mediaDevices?.addEventListener?.("devicechange", () => listMicrophones().catch(() => {}));
  window.addEventListener("pagehide", () => { if (pc) disconnect(); });
  listMicrophones().catch(() => {});
  setControls(false);

  // Test and debugging hooks: read-only views of what the page knows.
  window.realtalk = {
    state,
    /** The user's waits measured in the page (see the probe above), oldest first. */
    waits: () => probe.waits.slice(),
    connect,
    disconnect,
    /** RMS (0..1) of the agent's audio as heard by a WebAudio analyser on the remote stream. */
    remoteLevel: () => rms(remoteAnalyser),
    /** inbound-rtp audio stats: what the browser really received and decoded. */
    async inboundAudio() {
      if (!pc) return null;
      const stats = await pc.getStats();
      let out = null;
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "audio") {
          out = { packetsReceived: r.packetsReceived || 0, bytesReceived: r.bytesReceived || 0,
            totalAudioEnergy: r.totalAudioEnergy || 0, audioLevel: r.audioLevel || 0,
            totalSamplesReceived: r.totalSamplesReceived || 0 };
        }
      });
      return out;
    },
  };
})();
