/** An error the user can fix (a bad flag, a bad file): printed as one line, never as a stack trace. */
export class UsageError extends Error {
  override name = "UsageError";
}
