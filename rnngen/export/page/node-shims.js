// The browser build of sentencepiece (vendor/sentencepiece.js) imports Node's `fs` and `buffer`, which a browser
// lacks; the import map of index.html points both here. The page never reads files through `fs`, and the one use
// of Buffer is decoding the tokenizer from base64.
export const Buffer = { from: (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)) };
