/**
 * Importing Keras models as Keras saves them, without TensorFlow's converter:
 * - a `.keras` archive (`model.save('m.keras')`: a zip of `config.json`, `metadata.json` and
 *   `model.weights.h5`);
 * - a `.weights.h5` file (`model.save_weights('m.weights.h5')`), which holds weights only, with
 *   the model's config (`model.to_json()`, or an archive's `config.json`);
 * - a legacy HDF5 model (`model.save('m.h5')`, Keras 2's format, still written by Keras 3): the
 *   config in the root's `model_config` attribute, the weights under `model_weights`.
 *
 * The config maps layer by layer exactly as {@link importTfjs} maps a tfjs model (the same
 * layers, options, masks and errors: see `interop/tfjs.ts`); the weights are found by their
 * HDF5 paths (`layers/<layer>/…/vars/<i>` in Keras 3's files, `<layer>/…/<variable>` in legacy
 * ones). `hard_sigmoid` gates mean Keras 3's `relu6(x + 3) / 6` (`'hardSigmoidKeras3'`), or
 * Keras 2's `clip(0.2·x + 0.5, 0, 1)` (`'hardSigmoidTfjs'`) when the file's `keras_version`
 * (the archive's `metadata.json`, a legacy file's attributes) is 2.x; a `.weights.h5` file
 * records no version and is read as Keras 3's. Only Sequential models import. The file's kind is
 * read from its first bytes, not its name.
 *
 * The zip is read by `fflate` and the HDF5 file by `jsfive` (both plain JavaScript: no native
 * HDF5 library is built or loaded).
 * @module
 */
import type * as Fflate from 'fflate';
import type * as Hdf5 from 'jsfive';
import { BadFileError, GyreError, InvalidArgumentError, MissingArgumentError } from '../errors.js';
import type { Model } from '../model/index.js';
import { describe } from '../util/check.js';
import { readBytes } from '../util/files.js';
import type { GraphModel } from '../model/graph.js';
import { convertGraph, graphModelOf } from './tfjs-graph.js';
import { convertLayers, type Entry, isObject, type Json, modelOf, type Producer, sequentialLayers, type TfjsConversion } from './tfjs.js';

// Loaded on first use: together they would add ~30 ms to every `require('gyre')`.
let fflate: typeof Fflate | undefined;
let jsfive: typeof Hdf5 | undefined;
function unzipSync(data: Uint8Array): Record<string, Uint8Array> {
  if (fflate === undefined) fflate = require('fflate') as typeof Fflate;
  return fflate.unzipSync(data);
}
function hdf5(): typeof Hdf5 {
  if (jsfive === undefined) jsfive = require('jsfive') as typeof Hdf5;
  return jsfive;
}

/** Options of {@link loadKeras} and {@link importKeras}. */
export interface KerasOptions {
  /**
   * The model's config, needed (only) with a `.weights.h5` file, which holds weights alone:
   * `model.to_json()`'s output or an archive's `config.json`, as an object or a JSON string; for
   * {@link loadKeras} also the path of a file holding it.
   */
  config?: object | string;
}

const ZIP = [0x50, 0x4b, 0x03, 0x04];
const HDF5 = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return magic.every((b, i) => bytes[i] === b);
}

function bad(message: string, cause?: unknown): never {
  throw new BadFileError(`Keras import: ${message}`, cause === undefined ? undefined : { cause });
}

function parseJson(text: string, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return bad(`${what} is not valid JSON: ${(err as Error).message}`, err);
  }
  if (!isObject(v)) bad(`${what} must hold a JSON object, got ${describe(v)}`);
  return v;
}

function openHdf5(bytes: Uint8Array, what: string): Hdf5.File {
  try {
    return new (hdf5().File)(bytes.slice().buffer, what);
  } catch (err) {
    return bad(`${what} is not a readable HDF5 file (${(err as Error).message})`, err);
  }
}

/** The datasets under `root` (the file, or a legacy file's `model_weights`), by path (`layers/lstm/cell/vars/0`). */
function readWeights(root: Hdf5.Group, what: string): Entry[] {
  const out: Entry[] = [];
  const walk = (group: Hdf5.Group, prefix: string): void => {
    for (const key of group.keys) {
      const name = prefix ? `${prefix}/${key}` : key;
      let member: Hdf5.Group | Hdf5.Dataset | null;
      try {
        member = group.get(key);
      } catch (err) {
        bad(`${what}: cannot read ${JSON.stringify(name)} (${(err as Error).message})`, err);
      }
      if (member instanceof hdf5().Group) walk(member, name);
      else if (member instanceof hdf5().Dataset) out.push(entryOf(member, name, what));
    }
  };
  walk(root, '');
  return out;
}

function readAttrs(group: Hdf5.Group): Json {
  try {
    const a: unknown = group.attrs;
    return isObject(a) ? a : {};
  } catch (err) {
    return bad(`the HDF5 file's attributes cannot be read (${(err as Error).message})`, err);
  }
}

function entryOf(d: Hdf5.Dataset, name: string, what: string): Entry {
  const dtype = typeof d.dtype === 'string' ? d.dtype : JSON.stringify(d.dtype);
  const shape = [...d.shape];
  // Floats of any width (mixed-precision models store float16) are read as float32; other
  // datasets (seed generators' and optimizers' integer state) keep their dtype and no values.
  if (!/^[<>|]?f[248]$/.test(dtype)) return { name, shape, values: undefined, dtype, group: undefined };
  let values: Float32Array;
  try {
    values = Float32Array.from(d.value as ArrayLike<number>);
  } catch (err) {
    return bad(`${what}: cannot read the values of ${JSON.stringify(name)} (${(err as Error).message})`, err);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) bad(`${what}: ${JSON.stringify(name)} has ${values.length} values for shape [${shape.join(', ')}]`);
  return { name, shape, values, dtype: 'float32', group: undefined };
}

/** Keras 2 or 3 by the `keras_version` that `metadata.json` (or a legacy file's attributes) gives; absent: Keras 3. */
function producerOf(version: unknown): Producer {
  return typeof version === 'string' && /^2\./.test(version) ? 'keras2' : 'keras3';
}

/** Turns a Keras config and its weights into a gyre model's parts. */
type Converter<T> = (config: Json, producer: Producer, weights: () => Entry[]) => T;

function sequentialOf(config: Json, producer: Producer, weights: () => Entry[]): TfjsConversion {
  return convertLayers(sequentialLayers(config), producer, weights);
}

function configOf(config: object | string | undefined): Json {
  if (config === undefined) {
    throw new MissingArgumentError(
      "Keras import: a .weights.h5 file holds weights only; pass the model's config as options.config (model.to_json(), or a .keras archive's config.json)",
    );
  }
  if (typeof config === 'string') return parseJson(config, 'options.config');
  if (!isObject(config))
    throw new InvalidArgumentError(`Keras import: options.config must be an object or a JSON string, got ${describe(config)}`);
  return config;
}

/**
 * The conversion of a Keras file's bytes: a `.keras` archive, or a `.weights.h5` file with
 * `config` (the file's kind is read from its first bytes, not its name).
 */
function convertKeras<T>(data: Uint8Array, config: object | string | undefined, convert: Converter<T>): T {
  if (startsWith(data, ZIP)) {
    if (config !== undefined)
      throw new InvalidArgumentError('Keras import: options.config is for .weights.h5 files; a .keras archive holds its own config');
    let files: Record<string, Uint8Array>;
    try {
      files = unzipSync(data);
    } catch (err) {
      return bad(`the archive cannot be unzipped (${(err as Error).message})`, err);
    }
    const text = (name: string): string | undefined => (files[name] ? Buffer.from(files[name]).toString('utf8') : undefined);
    const configText = text('config.json');
    const weights = files['model.weights.h5'];
    if (configText === undefined || weights === undefined) {
      const names = Object.keys(files);
      bad(
        `a .keras archive holds config.json and model.weights.h5; this one has ${names.length ? names.map((n) => JSON.stringify(n)).join(', ') : 'no files'}`,
      );
    }
    const metadataText = text('metadata.json');
    const metadata = metadataText === undefined ? undefined : parseJson(metadataText, 'metadata.json');
    const what = 'model.weights.h5';
    return convert(parseJson(configText, 'config.json'), producerOf(metadata?.keras_version), () =>
      readWeights(openHdf5(weights, what), what),
    );
  }
  if (startsWith(data, HDF5)) {
    const file = openHdf5(data, 'the HDF5 file');
    const attrs = readAttrs(file);
    if (typeof attrs.model_config === 'string') {
      // A whole model in Keras' legacy HDF5 format (`model.save('m.h5')`): the config in the
      // root's attributes, the weights under `model_weights/<layer>/…/<variable>`.
      if (config !== undefined)
        throw new InvalidArgumentError('Keras import: options.config is for .weights.h5 files; this .h5 file holds its own config');
      const weights = file.get('model_weights');
      if (!(weights instanceof hdf5().Group)) bad('the legacy .h5 model has a model_config but no model_weights group');
      return convert(parseJson(attrs.model_config, 'the model_config attribute'), producerOf(attrs.keras_version), () =>
        readWeights(weights, 'the HDF5 file'),
      );
    }
    return convert(configOf(config), 'keras3', () => readWeights(file, 'the weights file'));
  }
  return bad(
    `expected a .keras archive (a zip), or a .weights.h5 or legacy .h5 file (HDF5); the data starts with bytes ${[...data.subarray(0, 8)]
      .map((b) => b.toString(16).padStart(2, '0'))
      .join(' ')}`,
  );
}

function bytesOf(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new InvalidArgumentError(
    `Keras import: data must be the file's bytes (a Uint8Array, Buffer or ArrayBuffer), got ${describe(data)}`,
  );
}

/**
 * Builds a gyre model from a Keras file's bytes: a `.keras` archive, a legacy `.h5` model, or a
 * `.weights.h5` file with `options.config`. See the module documentation for what maps how.
 * @throws {BadFileError} for data that is not such a file or is malformed;
 *   {@link InvalidArgumentError} for an unsupported layer or option (the message names the
 *   layer and the option); {@link MissingArgumentError} for missing weights or a `.weights.h5`
 *   without `options.config`; {@link ShapeMismatchError} for weights of the wrong shape.
 */
export function importKeras(data: Uint8Array | ArrayBuffer, options: KerasOptions = {}): Model {
  const bytes = bytesOf(data);
  if (!isObject(options)) throw new InvalidArgumentError(`Keras import: options must be an object, got ${describe(options)}`);
  try {
    return modelOf(convertKeras(bytes, (options as KerasOptions).config, sequentialOf));
  } catch (err) {
    if (err instanceof GyreError) err.message = err.message.replace(/^tfjs import: /, 'Keras import: ');
    throw err;
  }
}

/**
 * Reads a Keras model from disk and builds a gyre model: `path` is a `.keras` archive, a legacy
 * `.h5` model, or a `.weights.h5` file with `options.config` (the config as an object or a JSON string, or the
 * path of a JSON file holding it). Errors about the file's content name the path.
 * @throws {FileError} when a file cannot be read; otherwise as {@link importKeras}.
 */
export async function loadKeras(path: string, options: KerasOptions = {}): Promise<Model> {
  if (typeof path !== 'string') throw new InvalidArgumentError(`loadKeras: path must be a string, got ${describe(path)}`);
  if (!isObject(options)) throw new InvalidArgumentError(`loadKeras: options must be an object, got ${describe(options)}`);
  const bytes = await readBytes(path, 'read Keras file');
  let config = (options as KerasOptions).config;
  if (typeof config === 'string' && !config.trimStart().startsWith('{')) {
    config = (await readBytes(config, 'read Keras config')).toString('utf8');
  }
  try {
    return modelOf(convertKeras(bytes, config, sequentialOf));
  } catch (err) {
    if (err instanceof GyreError) err.message = err.message.replace(/^(tfjs|Keras) import: /, `Keras import (${path}): `);
    throw err;
  }
}

/**
 * Builds a {@link GraphModel} from a Keras file holding a functional model (`keras.Model(inputs,
 * outputs)`): a `.keras` archive, a legacy `.h5` model, or a `.weights.h5` file with
 * `options.config`. Recurrent layers with `return_state` and `initial_state` map as
 * {@link importTfjsGraph} says. Errors as {@link importKeras}.
 */
export function importKerasGraph(data: Uint8Array | ArrayBuffer, options: KerasOptions = {}): GraphModel {
  const bytes = bytesOf(data);
  if (!isObject(options)) throw new InvalidArgumentError(`Keras import: options must be an object, got ${describe(options)}`);
  try {
    const { spec, parameters } = convertKeras(bytes, (options as KerasOptions).config, convertGraph);
    return graphModelOf(spec, parameters);
  } catch (err) {
    if (err instanceof GyreError) err.message = err.message.replace(/^tfjs import: /, 'Keras import: ');
    throw err;
  }
}

/** Reads a Keras file holding a functional model from disk: {@link importKerasGraph} of its bytes; errors name the path. */
export async function loadKerasGraph(path: string, options: KerasOptions = {}): Promise<GraphModel> {
  if (typeof path !== 'string') throw new InvalidArgumentError(`loadKerasGraph: path must be a string, got ${describe(path)}`);
  const bytes = await readBytes(path, 'read Keras file');
  try {
    return importKerasGraph(bytes, options);
  } catch (err) {
    if (err instanceof GyreError) err.message = err.message.replace(/^(tfjs|Keras) import: /, `Keras import (${path}): `);
    throw err;
  }
}
