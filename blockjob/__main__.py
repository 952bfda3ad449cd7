from blockjob.cli import main

raise SystemExit(main())
