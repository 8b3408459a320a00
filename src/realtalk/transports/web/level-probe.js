// The page's level probe, on the audio rendering thread: it reads every 128-sample block of one
// stream and tells the page only when something changes, a few messages a turn, where a
// ScriptProcessor woke the page's main thread ~190 times a second per stream (CPU the agent,
// on the same small machine, needs while it answers).
//   "onset":  loud audio after at least `gapS` of quiet (an agent reply starts), at time `t`
//   "offset": the first quiet block after loud audio; `t` is the last loud block's time
// Times are the AudioContext's (`currentTime` of the block): one clock for every stream.
class LevelProbe extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.loud = typeof o.loud === "number" ? o.loud : 0.02;
    this.gapS = typeof o.gapS === "number" ? o.gapS : 0.3;
    this.lastLoud = null;
    this.wasLoud = false;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    let peak = 0;
    for (let i = 0; i < channel.length; i += 1) {
      const v = channel[i] < 0 ? -channel[i] : channel[i];
      if (v > peak) peak = v;
    }
    const t = currentTime;
    if (peak >= this.loud) {
      if (this.lastLoud === null || t - this.lastLoud > this.gapS) {
        this.port.postMessage({ kind: "onset", t });
      }
      this.lastLoud = t;
      this.wasLoud = true;
    } else if (this.wasLoud) {
      this.wasLoud = false;
      this.port.postMessage({ kind: "offset", t: this.lastLoud });
    }
    return true;
  }
}

registerProcessor("realtalk-level-probe", LevelProbe);
