import Joi from "joi";
import { Limits } from "../limits";

/** Field helpers the schema files share (internal: not re-exported by the package). */

/** A display name: trimmed, 1 to Limits.nameMaxChars characters. */
export const name = () => Joi.string().trim().min(1).max(Limits.nameMaxChars);

/** No NUL character anywhere (no process argument, path or environment can hold one). */
export const NO_NUL = /^[^\0]*$/;

/** One or more characters, none of them whitespace or NUL (a ref, branch, user name, registry URL). */
export const NO_SPACE_OR_NUL = /^[^\s\0]+$/;
