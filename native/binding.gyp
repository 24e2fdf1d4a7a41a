{
  "targets": [
    {
      "target_name": "ppsim_native",
      "sources": [
        "src/addon.cc",
        "src/util.cc",
        "src/mem.cc",
        "src/mapping.cc",
        "src/uffd.cc",
        "src/fault_reader.cc",
        "src/pagemap.cc",
        "src/unix_socket.cc",
        "src/bench.cc",
        "src/bulk_sender.cc",
        "src/bulk_send_frames.cc",
        "src/bulk_send_ways.cc",
        "src/bulk_receiver.cc",
        "src/bulk_frames.cc",
        "src/bulk_stream.cc",
        "src/frame_reader.cc",
        "src/page_install.cc",
        "src/page_states.cc",
        "src/zero_holes.cc",
        "src/bench_install.cc",
        "src/sched.cc",
        "src/fault_lane.cc",
        "src/lane_core.cc",
        "src/lane_server.cc",
        "src/puncher.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "ppsim-guest",
      "type": "executable",
      "sources": [
        "guest/main.cc",
        "guest/config.cc",
        "guest/vcpu.cc",
        "guest/vcpu_sched.cc",
        "guest/vcpu_steps.cc",
        "guest/control.cc",
        "guest/memory.cc"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-O2", "-pthread"],
      "ldflags": ["-pthread"],
      "libraries": ["-lpthread"]
    }
  ]
}
