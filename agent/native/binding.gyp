{
  # Kept in agent/native/, not at the package root: npm runs `node-gyp rebuild` on its own
  # when it finds a binding.gyp at the root (reference/bpf.md pitfall 10).
  "targets": [
    {
      "target_name": "espan_capture",
      "sources": ["src/addon.cc", "src/loader.c", "src/http1_scan.c", "src/span_json.c", "src/span_encoder.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "../../bpf",
        "../../bpf/.output"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wno-unused-parameter"],
      "cflags_c": ["-std=gnu11"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      # Dynamic: Debian's libbpf.a is not -fPIC and cannot go into a .node (pitfall 9).
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
