// Strict base64 for bytes carried as text (HTTP ?encoding=base64 and ?keyEncoding=base64, the CLI's
// --base64): Buffer.from(text, 'base64') alone skips characters that are not base64 and decodes
// what is left, so a typo would name other bytes instead of failing.

/** Standard or URL-safe alphabet, padded or not. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** The bytes of strict base64 text, or null when it is not (bad characters, or a length no encoding has). */
export function decodeBase64Strict(text: string): Buffer | null {
  if (!BASE64.test(text) || text.replace(/=+$/, '').length % 4 === 1) return null;
  return Buffer.from(text, 'base64');
}
