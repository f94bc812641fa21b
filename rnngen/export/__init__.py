"""A trained model taken anywhere: `rnngen export` writes it as ONNX (`graph`), with the folder a runtime needs
(`folder`), or as a static page that completes prompts in the visitor's browser (`web`)."""
