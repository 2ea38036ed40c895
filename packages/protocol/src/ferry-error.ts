/**
 * The root of every error Ferry throws: a stable `code` (`FERRY_ERR_*`, never reused for another
 * meaning, carried over the wire in place of the error), a short specific message, and `cause`.
 * Each package derives one base class from it (`VmError`, `MigrationError`, …) so callers can
 * catch a package's errors by class and every error by `code`.
 */
export class FerryError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
