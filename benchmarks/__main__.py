import sys

from benchmarks.runner import main

if len(sys.argv) > 1 and sys.argv[1] == "gpu":  # python -m benchmarks gpu --rows 1000000
    from benchmarks.gpu import main as gpu_main

    sys.exit(gpu_main(sys.argv[2:]))
if len(sys.argv) > 1 and sys.argv[1] == "first-fit":  # cold and warm first fits, bambi too
    from benchmarks.first_fit import main as first_fit_main

    sys.exit(first_fit_main(sys.argv[2:]))
sys.exit(main())
