// The central station page: bed tiles drawn from the server's WebSocket feed (see monitor/web/_server.py).
"use strict";
(() => {
  const STRIP_S = 8; // seconds across a strip
  const ERASE_S = 0.25; // the blank bar ahead of the sweep
  const DELAY_S = 0.3; // the sweep runs this far behind the newest value, so it moves smoothly
  const MV_RANGE = 4; // millivolts from the bottom to the top of a strip (10 mm/mV at 25 mm/s: 4:1 strips of 8 s)
  const LABEL_COLOURS = { N: "#9fe29f", S: "#ffb347", V: "#ff4d4d", F: "#d98cff", Q: "#9aa0a6" };
  // Auditory alarm signals after IEC 60601-1-8 (Tables 3 and 4): a burst of pulses per priority, each pulse
  // `td` long with rise and fall 15% of it, `ts` between pulses; high: 10 pulses (3 + 2, a pause, 3 + 2) with
  // 2 ts + td between the 3rd and 4th (and 8th and 9th) and `pause` between the 5th and 6th; medium 3, low 2;
  // `tb` from a burst's last pulse to the next burst. Square waves: the fundamental and at least 3 odd
  // harmonics lie in 300-4000 Hz.
  const TONE_TABLE = {
    high: { n: 10, td: 0.12, ts: 0.1, pause: 0.6, tb: 5, freq: 523 }, // td 75-200 ms, ts 50-125 ms, tb 2.5-15 s
    medium: { n: 3, td: 0.2, ts: 0.2, tb: 8, freq: 440 }, // td 125-250 ms, ts 125-250 ms, tb 2.5-30 s
    low: { n: 2, td: 0.2, ts: 0.2, tb: 20, freq: 392 }, // as medium, tb over 15 s
  };
  function burst(spec) { // the pulses' start times (s into the burst)
    const starts = [0];
    for (let i = 1; i < spec.n; i++) {
      let gap = spec.ts;
      if (spec.n === 10 && (i === 3 || i === 8)) gap = 2 * spec.ts + spec.td;
      if (spec.n === 10 && i === 5) gap = spec.pause;
      starts.push(starts[i - 1] + spec.td + gap);
    }
    return starts;
  }
  const TONES = Object.fromEntries(Object.entries(TONE_TABLE).map(([k, spec]) => {
    const pulses = burst(spec);
    return [k, { ...spec, pulses, every: pulses[pulses.length - 1] + spec.td + spec.tb }];
  }));
  const beds = new Map();
  const stats = { latencies: [], frames: 0, messages: 0, drawnChunks: 0, alarmLatency: {} };
  const ward = document.getElementById("ward");
  const template = document.getElementById("tile");
  let serverOffset = 0; // server clock minus page clock, seconds
  let pausedUntil = 0; // server clock
  let audioCtx = null;
  let nextBurst = 0;
  window.ecgCentral = { stats, beds, tones: TONES };

  function ensureBed(id) {
    let bed = beds.get(id);
    if (bed) return bed;
    const tile = template.content.firstElementChild.cloneNode(true);
    tile.dataset.stream = id;
    tile.querySelector(".bed").textContent = id;
    tile.querySelector(".bed").addEventListener("click", () => openBed(id));
    const grid = tile.querySelector("canvas.grid");
    const trace = tile.querySelector("canvas.trace");
    bed = {
      id, tile, grid, trace, ctx: trace.getContext("2d"),
      hr: tile.querySelector(".hr .value"), quality: tile.querySelector(".quality"),
      banner: tile.querySelector(".banner"),
      fs: 125, sourceFs: null, n: 0, values: null, head: -1, drawn: -1, shown: null,
      beats: new Map(), stamps: [], alarms: [], width: 0, height: 0,
    };
    bed.n = Math.round(STRIP_S * bed.fs);
    bed.values = new Float32Array(bed.n).fill(NaN);
    const tiles = [...ward.children];
    const after = tiles.find((t) => t.dataset.stream.localeCompare(id, undefined, { numeric: true }) > 0);
    ward.insertBefore(tile, after || null);
    beds.set(id, bed);
    setHr(bed, null);
    return bed;
  }

  function resize(bed) {
    const rect = bed.trace.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width)), h = Math.max(1, Math.round(rect.height));
    if (w === bed.width && h === bed.height) return;
    bed.width = w; bed.height = h;
    for (const c of [bed.grid, bed.trace]) { c.width = w; c.height = h; }
    drawGrid(bed);
    bed.drawn = -1; // redraw the kept strip at the new size
  }

  function drawGrid(bed) {
    const g = bed.grid.getContext("2d");
    const w = bed.width, h = bed.height;
    const pxPerMm = w / (STRIP_S * 25);
    g.fillStyle = "#101418";
    g.fillRect(0, 0, w, h);
    for (const [step, colour] of [[1, "#1b2229"], [5, "#2c3640"]]) {
      g.strokeStyle = colour;
      g.beginPath();
      for (let x = 0; x <= w; x += step * pxPerMm) { g.moveTo(x, 0); g.lineTo(x, h); }
      for (let y = h; y >= 0; y -= step * pxPerMm) { g.moveTo(0, y); g.lineTo(w, y); }
      g.stroke();
    }
  }

  function addWave(bed, m, live) {
    bed.fs = m.fs; bed.sourceFs = m.source_fs;
    const n = Math.round(STRIP_S * m.fs);
    if (n !== bed.n) { bed.n = n; bed.values = new Float32Array(n).fill(NaN); bed.head = -1; bed.drawn = -1; }
    const k0 = Math.round((m.sample * m.fs) / m.source_fs);
    if (bed.head >= 0 && k0 > bed.head + bed.n) bed.values.fill(NaN); // a long gap: nothing of the old strip stays
    m.values.forEach((v, i) => { bed.values[(k0 + i) % bed.n] = v === null ? NaN : v; });
    for (let k = bed.head + 1; k < k0; k++) bed.values[k % bed.n] = NaN; // missing chunk
    const last = k0 + m.values.length - 1;
    if (last > bed.head) bed.head = last;
    if (bed.shown === null || bed.shown < bed.head - bed.n || bed.shown > bed.head) bed.shown = bed.head - DELAY_S * m.fs;
    if (live) bed.stamps.push([k0, m.stamp]);
    for (const [k] of bed.beats) if (k < bed.head - bed.n) bed.beats.delete(k);
  }

  function addBeat(bed, m) {
    const fs = bed.sourceFs || 360;
    bed.beats.set(Math.round((m.sample * bed.fs) / fs), { label: m.label, marked: false });
  }

  function setHr(bed, hr) {
    const text = hr === null || hr === undefined ? "---" : String(Math.round(hr));
    bed.hr.textContent = text;
    bed.tile.dataset.hr = text;
  }

  function setVitals(bed, v) {
    if (!v) return;
    setHr(bed, v.hr);
    bed.quality.textContent = v.quality || "";
    bed.quality.dataset.quality = v.quality || "";
    bed.tile.dataset.quality = v.quality || "";
  }

  function setAlarms(bed, alarms) {
    bed.alarms = alarms || [];
    const now = Date.now() / 1000 + serverOffset;
    for (const a of bed.alarms) { // publication (the monitor's stamp) -> on the screen
      if (!(a.id in stats.alarmLatency) && typeof a.time === "number") stats.alarmLatency[a.id] = now - a.time;
    }
    bed.banner.replaceChildren(...bed.alarms.map((a) => {
      const div = document.createElement("div");
      div.className = `alarm ${a.priority} ${a.category}${a.acked ? " acked" : ""}`;
      div.dataset.kind = a.kind;
      div.dataset.priority = a.priority;
      div.dataset.alarmId = a.id;
      const text = document.createElement("span");
      text.textContent = a.text;
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = a.category === "technical" ? "technical" : a.priority;
      div.append(text, tag);
      div.append(stripButton(a.id));
      if (a.acked) {
        const by = document.createElement("span");
        by.className = "tag";
        by.textContent = `acknowledged by ${a.acked.by}`;
        div.append(by);
      } else {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "ack";
        button.textContent = "Acknowledge";
        button.addEventListener("click", () => acknowledge(bed.id, a.id));
        div.append(button);
      }
      return div;
    }));
    const top = bed.alarms[0];
    if (top) bed.tile.dataset.priority = top.priority; else delete bed.tile.dataset.priority;
  }

  function stripButton(alarmId) { // opens the alarm's review strip
    const button = document.createElement("button");
    button.type = "button";
    button.className = "review";
    button.textContent = "Strip";
    button.addEventListener("click", () => showStrip(alarmId));
    return button;
  }

  async function acknowledge(bedId, alarmId) {
    await fetch("/api/ack", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ bed: bedId, alarm_id: alarmId }),
    });
  }

  async function showStrip(alarmId) {
    const panel = document.getElementById("review");
    const note = panel.querySelector(".note");
    const canvas = panel.querySelector("canvas");
    panel.hidden = false;
    panel.dataset.alarmId = alarmId;
    panel.dataset.state = "loading";
    note.textContent = "loading";
    const reply = await fetch("/api/strip", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ alarm_id: alarmId }),
    });
    if (!reply.ok) {
      panel.dataset.state = "missing";
      note.textContent = reply.status === 404 ? "No strip yet: it is kept 10 s after the onset." : "Strip unavailable.";
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      return;
    }
    const strip = await reply.json();
    panel.dataset.state = "shown";
    note.textContent = `${strip.bed}: ${strip.kind}, lead ${strip.lead}, ${(strip.values.length / strip.fs).toFixed(1)} s (onset in red)`;
    drawStrip(canvas, strip);
  }

  function drawStrip(canvas, strip) {
    const seconds = strip.values.length / strip.fs;
    const w = canvas.width = canvas.clientWidth, h = canvas.height = canvas.clientHeight;
    const ctx = canvas.getContext("2d"), pxPerS = w / seconds, pxPerMv = (pxPerS / 25) * 10;
    ctx.fillStyle = "#fff8f8"; ctx.fillRect(0, 0, w, h);
    for (const [step, colour] of [[1, "#f6d0d0"], [5, "#e99b9b"]]) {
      const px = (step * pxPerS) / 25;
      ctx.strokeStyle = colour; ctx.beginPath();
      for (let x = 0; x <= w; x += px) { ctx.moveTo(x, 0); ctx.lineTo(x, h); }
      for (let yy = h; yy >= 0; yy -= px) { ctx.moveTo(0, yy); ctx.lineTo(w, yy); }
      ctx.stroke();
    }
    ctx.strokeStyle = "#000"; ctx.lineWidth = 1.2; ctx.beginPath();
    let pen = false;
    strip.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const x = i / strip.fs * pxPerS, yy = h / 2 - v * pxPerMv;
      if (pen) ctx.lineTo(x, yy); else { ctx.moveTo(x, yy); pen = true; }
    });
    ctx.stroke();
    const onsetX = ((strip.onset_sample - strip.sample) / strip.source_fs) * pxPerS;
    ctx.strokeStyle = "#c00000"; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(onsetX, 0); ctx.lineTo(onsetX, h); ctx.stroke();
  }

  function y(bed, v) {
    return bed.height * (0.5 - v / MV_RANGE);
  }

  function draw(bed, now) {
    resize(bed);
    if (bed.head < 0) return;
    const ctx = bed.ctx, n = bed.n, dx = bed.width / n;
    // the sweep runs at real time, a little faster while it is more than DELAY_S behind the newest value
    const lag = (bed.head - bed.shown) / bed.fs;
    const rate = bed.fs * (1 + Math.min(0.5, Math.max(0, lag - DELAY_S)));
    const target = Math.min(bed.head, bed.shown + ((now - (bed.lastFrame || now)) / 1000) * rate);
    bed.lastFrame = now;
    let from = bed.drawn < 0 || bed.drawn < target - n ? Math.ceil(target) - n + 1 : bed.drawn + 1;
    const to = Math.floor(target);
    if (bed.drawn < 0) {
      ctx.clearRect(0, 0, bed.width, bed.height);
      for (const beat of bed.beats.values()) beat.marked = false;
    }
    if (to < from) { bed.shown = target; return; }
    const erase = Math.round(ERASE_S * bed.fs);
    for (let k = from; k <= to + erase; k++) { // blank ahead of the sweep
      const x = (k % n) * dx;
      ctx.clearRect(x, 0, Math.ceil(dx) + 1, bed.height);
    }
    ctx.strokeStyle = "#7fff7f";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    for (let k = Math.max(from - 1, to - n + 1); k <= to; k++) {
      const v = bed.values[((k % n) + n) % n];
      const x = (((k % n) + n) % n) * dx;
      if (Number.isNaN(v) || (pen && k % n === 0)) { pen = false; if (Number.isNaN(v)) continue; }
      if (pen) ctx.lineTo(x, y(bed, v)); else { ctx.moveTo(x, y(bed, v)); pen = true; }
    }
    ctx.stroke();
    for (const [k, beat] of bed.beats) { // a beat is labelled after its strip was drawn: mark it where it is
      if (beat.marked || k > to || k <= to - n + erase) continue;
      const x = (((k % n) + n) % n) * dx;
      ctx.fillStyle = LABEL_COLOURS[beat.label] || "#fff";
      ctx.fillRect(x - 1, 2, 3, 10);
      if (beat.label !== "N") { ctx.font = "bold 11px system-ui"; ctx.fillText(beat.label, x + 3, 12); }
      beat.marked = true;
    }
    while (bed.stamps.length && bed.stamps[0][0] <= to) {
      const [, stamp] = bed.stamps.shift();
      stats.latencies.push(Date.now() / 1000 + serverOffset - stamp); // monitor stamp -> on the screen
      stats.drawnChunks++;
    }
    bed.drawn = to;
    bed.shown = target;
  }

  // --- the bed view: the live strip larger, the heart-rate trend, the alarm history with each alarm's strip ---
  const bedView = { id: null, el: document.getElementById("bedview"), timer: null, sizes: new Map(), second: null };

  async function openBed(id) {
    bedView.id = id;
    bedView.second = null; // the second lead comes while the view is open (the monitor draws it on request)
    bedView.el.querySelector(".lead.second").hidden = true;
    bedView.el.hidden = false;
    bedView.el.dataset.bed = id;
    bedView.el.querySelector(".title").textContent = id;
    clearInterval(bedView.timer);
    bedView.timer = setInterval(() => refreshBed(), 5000);
    await refreshBed();
  }

  function closeBed() {
    clearInterval(bedView.timer);
    bedView.id = null;
    bedView.el.hidden = true;
  }

  async function refreshBed() {
    const id = bedView.id;
    if (id === null) return;
    const reply = await fetch("/api/bed", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ bed: id }),
    });
    if (!reply.ok || bedView.id !== id) return;
    const view = await reply.json();
    const hr = view.vitals && typeof view.vitals.hr === "number" ? `${Math.round(view.vitals.hr)} bpm` : "--- bpm";
    bedView.el.querySelector(".note").textContent = `${hr} · ${(view.vitals && view.vitals.quality) || "no signal yet"}`;
    bedView.el.querySelector(".lead.first .name").textContent = `${view.lead || "?"} (monitored)`;
    drawTrend(bedView.el.querySelector("canvas.trend"), view.trend);
    showHistory(view.history);
    bedView.el.dataset.state = "shown";
  }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  }

  function showHistory(history) {
    const body = bedView.el.querySelector(".history tbody");
    body.replaceChildren(...history.map((h) => {
      const row = document.createElement("tr");
      row.dataset.alarmId = h.id;
      row.dataset.kind = h.kind;
      row.dataset.active = h.active ? "true" : "false";
      const fs = h.fs || 0;
      let ended = "active";
      if (!h.active) {
        ended = h.end_sample !== null && fs ? `at ${clock(h.end_sample / fs)}` : "ended";
        if (h.end_reason) ended += ` (${h.end_reason})`;
      }
      const cells = [fs ? clock(h.onset_sample / fs) : "?", h.text, h.category === "technical" ? `${h.priority}, technical` : h.priority, ended];
      row.append(...cells.map((text) => { const td = document.createElement("td"); td.textContent = text; return td; }));
      const td = document.createElement("td");
      td.append(stripButton(h.id));
      row.append(td);
      return row;
    }));
  }

  function drawTrend(canvas, trend) {
    const w = canvas.width = canvas.clientWidth, h = canvas.height = canvas.clientHeight;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#101418"; ctx.fillRect(0, 0, w, h);
    const values = trend.hr, n = values.length;
    const finite = values.filter((v) => v !== null);
    const top = Math.max(200, ...finite.map((v) => v + 20));
    const left = 34, bottom = h - 16, yOf = (v) => bottom - (v / top) * (bottom - 4);
    ctx.font = "11px system-ui"; ctx.fillStyle = "#8a939d"; ctx.strokeStyle = "#2c3640";
    ctx.beginPath();
    for (let v = 0; v <= top; v += 40) { ctx.moveTo(left, yOf(v)); ctx.lineTo(w, yOf(v)); ctx.fillText(String(v), 2, yOf(v) + 4); }
    ctx.stroke();
    const span = Math.max(n, 360) * trend.step_s; // at least an hour across
    const xOf = (i) => left + ((i + 1 + Math.max(n, 360) - n) / Math.max(n, 360)) * (w - left);
    for (let hours = 0; hours * 3600 <= span; hours += span > 4 * 3600 ? 2 : 1) {
      const x = w - (hours * 3600 / span) * (w - left);
      ctx.fillText(hours === 0 ? "now" : `-${hours} h`, Math.min(x, w - 24), h - 3);
    }
    ctx.strokeStyle = "#7fdc7f"; ctx.lineWidth = 1.5; ctx.beginPath();
    let pen = false;
    values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      if (pen) ctx.lineTo(xOf(i), yOf(v)); else { ctx.moveTo(xOf(i), yOf(v)); pen = true; }
    });
    ctx.stroke();
    canvas.dataset.points = String(finite.length);
  }

  function addSecond(m) { // a chunk of the viewed bed's second lead, at the same sample clock as its strip
    const bed = beds.get(m.bed);
    if (!bed || m.fs !== bed.fs) return;
    let second = bedView.second;
    if (!second || second.n !== bed.n) {
      second = bedView.second = { values: new Float32Array(bed.n).fill(NaN), n: bed.n, head: -1 };
      const el = bedView.el.querySelector(".lead.second");
      el.hidden = false;
      el.querySelector(".name").textContent = m.lead || "second lead";
    }
    const k0 = Math.round((m.sample * m.fs) / m.source_fs);
    for (let k = second.head + 1; k < k0 && second.head >= 0 && k < second.head + second.n; k++) second.values[k % second.n] = NaN;
    m.values.forEach((v, i) => { second.values[(k0 + i) % second.n] = v === null ? NaN : v; });
    second.head = Math.max(second.head, k0 + m.values.length - 1);
    bedView.el.dataset.second = m.lead || "second";
  }

  function liveCanvas(which) { // the bed view's canvases for a lead, sized to the screen, grid drawn
    const grid = bedView.el.querySelector(`.lead.${which} canvas.grid`);
    const trace = bedView.el.querySelector(`.lead.${which} canvas.trace`);
    const rect = trace.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width)), h = Math.max(1, Math.round(rect.height));
    const size = bedView.sizes.get(which);
    if (!size || size[0] !== w || size[1] !== h) {
      bedView.sizes.set(which, [w, h]);
      for (const c of [grid, trace]) { c.width = w; c.height = h; }
      drawGrid({ grid, width: w, height: h });
    }
    const ctx = trace.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function sweep(ctx, values, n, from, to, w, h) { // values[k % n] for k in [from, to], where the sweep puts them
    const dx = w / n, yOf = (v) => h * (0.5 - v / MV_RANGE);
    ctx.strokeStyle = "#7fff7f"; ctx.lineWidth = 1.8; ctx.beginPath();
    let pen = false;
    for (let k = from; k <= to; k++) {
      const i = ((k % n) + n) % n, v = values[i];
      if (Number.isNaN(v) || (pen && i === 0)) { pen = false; if (Number.isNaN(v)) continue; }
      if (pen) ctx.lineTo(i * dx, yOf(v)); else { ctx.moveTo(i * dx, yOf(v)); pen = true; }
    }
    ctx.stroke();
  }

  function drawBedLive(bed) {
    const { ctx, w, h } = liveCanvas("first");
    const second = bedView.second;
    const other = second ? liveCanvas("second") : null;
    if (bed.head < 0 || bed.drawn < 0) return;
    const n = bed.n, dx = w / n, to = bed.drawn, erase = Math.round(ERASE_S * bed.fs);
    sweep(ctx, bed.values, n, to - n + 1 + erase, to, w, h);
    if (other) sweep(other.ctx, second.values, n, Math.max(to - n + 1 + erase, second.head - n + 1), Math.min(to, second.head), other.w, other.h);
    ctx.font = "bold 13px system-ui";
    for (const [k, beat] of bed.beats) {
      if (k > to || k <= to - n + erase) continue;
      const x = (((k % n) + n) % n) * dx;
      ctx.fillStyle = LABEL_COLOURS[beat.label] || "#fff";
      ctx.fillRect(x - 1, 2, 3, 14);
      if (beat.label !== "N") ctx.fillText(beat.label, x + 4, 15);
    }
  }

  function frame(now) {
    stats.frames++;
    for (const bed of beds.values()) draw(bed, now);
    if (bedView.id !== null && beds.has(bedView.id)) drawBedLive(beds.get(bedView.id));
    sound();
    requestAnimationFrame(frame);
  }

  function sound() {
    const serverNow = Date.now() / 1000 + serverOffset;
    const paused = serverNow < pausedUntil;
    const label = document.getElementById("paused");
    label.hidden = !paused;
    if (paused) {
      const left = Math.ceil(pausedUntil - serverNow);
      label.textContent = `Sound paused ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    }
    document.body.dataset.audioPaused = paused ? "true" : "false";
    if (!audioCtx || paused) return;
    let top = null;
    for (const bed of beds.values()) for (const a of bed.alarms) {
      if (a.acked) continue;
      if (!top || ["high", "medium", "low"].indexOf(a.priority) < ["high", "medium", "low"].indexOf(top)) top = a.priority;
    }
    if (!top || audioCtx.currentTime < nextBurst) return;
    const tone = TONES[top];
    for (const at of tone.pulses) beep(audioCtx.currentTime + at, tone);
    nextBurst = audioCtx.currentTime + tone.every;
  }

  function beep(at, tone) {
    const osc = audioCtx.createOscillator(), gain = audioCtx.createGain();
    const edge = 0.15 * tone.td; // rise and fall: 10-20% of the pulse
    osc.type = "square"; osc.frequency.value = tone.freq;
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(0.15, at + edge);
    gain.gain.setValueAtTime(0.15, at + tone.td - edge);
    gain.gain.linearRampToValueAtTime(0, at + tone.td);
    osc.connect(gain).connect(audioCtx.destination);
    osc.start(at); osc.stop(at + tone.td + 0.01);
  }

  function handle(m) {
    stats.messages++;
    switch (m.t) {
      case "ward":
        for (const b of m.beds) {
          const bed = ensureBed(b.bed);
          for (const w of b.wave) addWave(bed, w, false);
          for (const x of b.beats) addBeat(bed, x);
          setVitals(bed, b.vitals); setAlarms(bed, b.alarms);
        }
        break;
      case "wave": addWave(ensureBed(m.bed), m, true); break;
      case "wave2": if (m.bed === bedView.id) addSecond(m); break;
      case "beat": addBeat(ensureBed(m.bed), m); break;
      case "vitals": setVitals(ensureBed(m.bed), m); break;
      case "alarms": setAlarms(ensureBed(m.bed), m.alarms); break;
      case "audio": serverOffset = m.now - Date.now() / 1000; pausedUntil = m.paused_until; break;
      default: break;
    }
  }

  function connect() {
    const state = document.getElementById("connection");
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    ws.onopen = () => { state.dataset.state = "open"; state.textContent = "live"; };
    ws.onmessage = (ev) => handle(JSON.parse(ev.data));
    ws.onclose = () => {
      state.dataset.state = "closed"; state.textContent = "connection lost: retrying";
      setTimeout(connect, 1000);
    };
  }

  document.getElementById("sound-on").addEventListener("click", () => {
    audioCtx = audioCtx || new AudioContext();
    audioCtx.resume();
    document.getElementById("sound-on").textContent = "Sound is on";
  });
  document.getElementById("pause").addEventListener("click", () => fetch("/api/pause", { method: "POST" }));
  document.querySelector("#review .close").addEventListener("click", () => { document.getElementById("review").hidden = true; });
  document.querySelector("#bedview .close").addEventListener("click", closeBed);
  connect();
  requestAnimationFrame(frame);
})();
