"""The SQL endpoint: a Spark Thrift Server (`server`), its sign-in, TLS and write policy (`security`, `jvm/`)."""
