// Wrangler and workerd import a .wasm file as a compiled module (the CompiledWasm rule).
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
