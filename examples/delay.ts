/**
 * A first real training run on gyre's functional API: one LSTM layer and a dense readout learn
 * to output their input delayed by `delay` steps (`y_t = x_{t-delay}`), trained with Adam.
 * The LSTM's forward and backward passes run natively; the readout, the loss and Adam are the
 * few lines of TypeScript below.
 *
 * Run: `npm run demo` (after `npm install`). Options: `--steps N --seed S --delay K`.
 */
import { lstmBackward, lstmForward, type RecurrentWeights, seededRandom } from 'gyre';

/** Options of {@link trainDelay}. */
export interface DelayOptions {
  /** Adam updates to run. Default 400. */
  updates?: number;
  /** How many steps the target lags the input. Default 3. */
  delay?: number;
  /** Hidden size of the LSTM. Default 24. */
  hiddenSize?: number;
  /** Sequences per batch. Default 32. */
  batch?: number;
  /** Steps per sequence. Default 24. */
  steps?: number;
  /** Adam learning rate. Default 0.01. */
  learningRate?: number;
  /** Seed of the weight initialisation and the data. Default 1. */
  seed?: number;
  /** Called every `logEvery` updates with the mean squared error of the batch. */
  onLoss?: (update: number, loss: number) => void;
  /** Default 25. */
  logEvery?: number;
}

/** Result of {@link trainDelay}. */
export interface DelayResult {
  /** Mean squared error of every update's batch. */
  losses: number[];
  /** Mean squared error on 8 fresh batches after training. */
  testLoss: number;
  /** Mean squared error of always predicting 0 on the same test batches (the baseline). */
  baselineLoss: number;
}

/** Adam (Kingma & Ba) over a list of parameter arrays. */
class Adam {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;

  constructor(
    private readonly params: Float32Array[],
    private readonly lr: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    this.m = params.map((p) => new Float32Array(p.length));
    this.v = params.map((p) => new Float32Array(p.length));
  }

  step(grads: Float32Array[]): void {
    this.t += 1;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    this.params.forEach((p, k) => {
      const g = grads[k]!;
      const m = this.m[k]!;
      const v = this.v[k]!;
      for (let i = 0; i < p.length; i++) {
        m[i] = this.beta1 * m[i]! + (1 - this.beta1) * g[i]!;
        v[i] = this.beta2 * v[i]! + (1 - this.beta2) * g[i]! * g[i]!;
        p[i] = p[i]! - (this.lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + this.eps);
      }
    });
  }
}

/** Trains the delay task and returns the loss curve and the test loss. */
export function trainDelay(options: DelayOptions = {}): DelayResult {
  const updates = options.updates ?? 400;
  const delay = options.delay ?? 3;
  const H = options.hiddenSize ?? 24;
  const B = options.batch ?? 32;
  const T = options.steps ?? 24;
  const logEvery = options.logEvery ?? 25;
  const rand = seededRandom(options.seed ?? 1);
  const uniform = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);

  // PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every LSTM tensor and the readout.
  const k = 1 / Math.sqrt(H);
  const weights: RecurrentWeights<Float32Array> = {
    weight_ih_l0: uniform(4 * H, k),
    weight_hh_l0: uniform(4 * H * H, k),
    bias_ih_l0: uniform(4 * H, k),
    bias_hh_l0: uniform(4 * H, k),
  };
  const readW = uniform(H, k);
  const readB = uniform(1, k);
  const params = [weights.weight_ih_l0, weights.weight_hh_l0, weights.bias_ih_l0, weights.bias_hh_l0, readW, readB];
  const adam = new Adam(params, options.learningRate ?? 0.01);

  const batchData = () => {
    const x = uniform(B * T, 1);
    const y = new Float32Array(B * T);
    for (let b = 0; b < B; b++) for (let t = delay; t < T; t++) y[b * T + t] = x[b * T + t - delay]!;
    return { x, y };
  };
  const args = (x: Float32Array) => ({ input: x, batch: B, steps: T, inputSize: 1, hiddenSize: H, weights });
  // Steps before `delay` have no defined target and are left out of the loss.
  const counted = B * (T - delay);

  /** Readout `ŷ = h·w + b` at every step and its mean squared error against `y`. */
  const evaluate = (output: Float32Array, y: Float32Array) => {
    const pred = new Float32Array(B * T);
    let loss = 0;
    for (let r = 0; r < B * T; r++) {
      let s = readB[0]!;
      for (let j = 0; j < H; j++) s += output[r * H + j]! * readW[j]!;
      pred[r] = s;
      if (r % T >= delay) loss += (s - y[r]!) ** 2;
    }
    return { pred, loss: loss / counted };
  };

  const losses: number[] = [];
  for (let u = 1; u <= updates; u++) {
    const { x, y } = batchData();
    const { output } = lstmForward(args(x));
    const { pred, loss } = evaluate(output, y);
    losses.push(loss);
    // dL/dŷ, then through the readout to the LSTM's output sequence.
    const gradOutput = new Float32Array(B * T * H);
    const gradReadW = new Float32Array(H);
    const gradReadB = new Float32Array(1);
    for (let r = 0; r < B * T; r++) {
      if (r % T < delay) continue;
      const d = (2 * (pred[r]! - y[r]!)) / counted;
      gradReadB[0]! += d;
      for (let j = 0; j < H; j++) {
        gradReadW[j]! += d * output[r * H + j]!;
        gradOutput[r * H + j] = d * readW[j]!;
      }
    }
    const g = lstmBackward({ ...args(x), gradOutput });
    const gw = g.gradWeights;
    adam.step([gw.weight_ih_l0, gw.weight_hh_l0, gw.bias_ih_l0, gw.bias_hh_l0, gradReadW, gradReadB]);
    if (options.onLoss && (u % logEvery === 0 || u === 1)) options.onLoss(u, loss);
  }

  let testLoss = 0;
  let baselineLoss = 0;
  const zeros = new Float32Array(B * T * H);
  for (let i = 0; i < 8; i++) {
    const { x, y } = batchData();
    testLoss += evaluate(lstmForward(args(x)).output, y).loss / 8;
    const savedB = readB[0]!;
    readB[0] = 0;
    baselineLoss += evaluate(zeros, y).loss / 8;
    readB[0] = savedB;
  }
  return { losses, testLoss, baselineLoss };
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) {
    console.error(`--${name} must be a positive integer, got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  return v;
}

if (require.main === module) {
  const delay = flag('delay', 3);
  const updates = flag('steps', 400);
  console.log(`gyre: LSTM(24) + dense readout learning y[t] = x[t-${delay}] with Adam, ${updates} updates`);
  const started = Date.now();
  const result = trainDelay({
    updates,
    delay,
    seed: flag('seed', 1),
    onLoss: (u, loss) => console.log(`update ${String(u).padStart(4)}  mse ${loss.toFixed(5)}`),
  });
  const secs = (Date.now() - started) / 1000;
  console.log(
    `done in ${secs.toFixed(1)} s: test mse ${result.testLoss.toFixed(5)} ` + `(predicting zeros: ${result.baselineLoss.toFixed(5)})`,
  );
}
