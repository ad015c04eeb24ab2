/** The part of jsfive (a pure-JavaScript HDF5 reader) that gyre uses to read Keras weights. */
declare module 'jsfive' {
  export class Group {
    /** The names of the group's members. */
    readonly keys: string[];
    /** The attributes, by name (strings decoded). */
    readonly attrs: Record<string, unknown>;
    get(name: string): Group | Dataset | null;
  }
  export class File extends Group {
    constructor(buffer: ArrayBuffer, filename: string);
  }
  export class Dataset {
    readonly shape: number[];
    /** numpy-style, e.g. `<f4`, `<f8`, `<i8`; an object for compound and other types. */
    readonly dtype: string | object;
    /** The values in row-major order. */
    readonly value: ArrayLike<number | bigint>;
  }
}
