"""The benchmark report as a printed table."""

from __future__ import annotations


def _cell(value: float | None, fmt: str, width: int) -> str:
    return ("" if value is None else fmt.format(value)).rjust(width)


def print_table(report: dict) -> None:
    peak = report["matmul_peak_gflops"]
    machine = report["machine"]
    print(f"\ndevice {machine['device']}, {machine['threads']} threads; 1-minute load average "
          f"{machine['load_average_at_start'][0]:.1f} before the run (other processes) and "
          f"{machine['load_average_at_end'][0]:.1f} at its end (with its own threads); times "
          f"are the best of {report['settings']['repeats']}; ratios vs plain, same run")
    header = (f"{'size':5s} {'row':20s} {'variant':24s} {'img/s':>9s} {'x plain':>8s} "
              f"{'cpu x':>6s} {'peak MiB':>9s} {'mem x':>6s} {'GFLOP/s':>8s} "
              f"{'% peak':>7s}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for size, result in report["sizes"].items():
        for row in result["rows"]:
            optional = [_cell(row["memory_ratio"], "{:.2f}", 6),
                        _cell(row.get("gflops"), "{:.1f}", 8),
                        _cell(row.get("percent_of_peak"), "{:.0f}%", 7)]  # fmt: skip
            print(f"{size:5s} {row['row']:20s} {row['variant']:24s} {row['images_per_s']:9.2f} "
                  f"{row['speed_ratio']:8.2f} {row['cpu_ratio']:6.2f} {row['peak_mib']:9.1f} "
                  + " ".join(optional))
        flops = result["gflop_per_image"]
        print(f"{size}: forward GFLOP per image: stage one {flops['stage1']:.2f}, stage two "
              f"{flops['stage2']:.2f}; preparing the backends (BN folding, ONNX export; "
              f"one-off) {result['prepare_backends_s']:.1f} s")
        for backend, diff in result["parity"].items():
            print(f"{size}: chain_{backend} vs plain: result.csv max |diff| "
                  f"{diff['result_csv_max_abs_px']:.2g} px, "
                  f"boxes {diff['boxes_max_abs_px']:.2g} px")
    sizes = " and ".join(f"{n}^2" for n in report["matmul_sizes"])
    print(f"assumed peak: {peak:.1f} GFLOP/s ({report['matmul_peak_library']}) = the best of "
          f"{len(report['matmul_runs_gflops'])} measurements, each the best of 3 float32 "
          f"{sizes} matmuls by torch and, on the CPU, numpy and onnxruntime; "
          f"{machine['threads']} threads")
