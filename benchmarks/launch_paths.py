"""Host microseconds of one kernel launch by each path, in one process, calls interleaved in
rounds: CuPy's own launch inside a cupy.cuda.ExternalStream over torch's stream (the plain
path before v22, deprecated in CuPy 14), and the driver's cuLaunchKernelEx as `_loader`
launches every kernel since v22, plainly and early (programmatic dependent launch). The kernel
takes four arguments and does nothing, so the figure is the launch's host cost alone (each
path with launch_function's checks).

Usage: python3 benchmarks/launch_paths.py   (on a GPU; prints medians, then a JSON line)
"""
import json
import statistics
import time
import warnings

import cupy
import numpy
import torch

from sparsetrain.kernels import _loader

ROUNDS, CALLS = 20, 50
SOURCE = 'extern "C" __global__ void idle(float* a, float* b, int n, int m) {}'


def main() -> None:
    function = cupy.RawModule(code=SOURCE).get_function("idle")
    buffer = torch.empty(1024, device="cuda")
    args = (buffer, buffer, 1024, 1)
    device = torch.cuda.current_device()
    stream = _loader.current_stream_pointer(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        external = cupy.cuda.ExternalStream(stream, device)

    def cupy_launch() -> None:  # v21's launch_function, its plain path
        _loader.expect_cuda([buffer], "kernel")
        _loader._allow_shared(function, device, 0)
        arguments = (numpy.uint64(args[0].data_ptr()), numpy.uint64(args[1].data_ptr()),
                     numpy.int32(args[2]), numpy.int32(args[3]))
        with cupy.cuda.Device(device), external:
            function((1,), (32,), arguments, shared_mem=0)

    def driver_launch() -> None:
        _loader.launch_function(function, (1,), (32,), args)

    def driver_launch_early() -> None:
        with _loader.early_launches():
            driver_launch()

    paths = {"cupy in ExternalStream": cupy_launch,
             "driver, plain": driver_launch,
             "driver, early": driver_launch_early}
    for call in paths.values():
        for _ in range(CALLS):
            call()
    torch.cuda.synchronize()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, call in paths.items():
            for _ in range(CALLS):
                start = time.perf_counter_ns()
                call()
                samples[name].append((time.perf_counter_ns() - start) / 1e3)
            torch.cuda.synchronize()
    medians = {name: statistics.median(times) for name, times in samples.items()}
    print(f"{torch.cuda.get_device_name()}: host us per launch, median of {ROUNDS * CALLS}")
    for name, value in medians.items():
        print(f"  {name:24s} {value:6.1f}")
    print(json.dumps({"device": torch.cuda.get_device_name(), "host_us": medians}))


if __name__ == "__main__":
    main()
