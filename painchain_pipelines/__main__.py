from painchain_pipelines.cli import main

raise SystemExit(main())
