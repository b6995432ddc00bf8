{
  "targets": [
    {
      "target_name": "synod_pmem",
      "sources": ["pmem.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall"],
      "conditions": [["target_arch=='x64'", { "cflags": ["-msse4.2"] }]]
    }
  ]
}
