namespace PSStableDiffusion.Bench;

/// <summary>Command-line options; see <see cref="Usage"/>.</summary>
internal sealed class BenchOptions
{
    public static readonly string[] FullStages =
        { "kernels", "load-fp32", "load-fp16", "text", "text-3chunks", "unet512", "unet512-3chunks", "unet768", "unet1024", "vae512", "vae768", "vae1024", "vae1024-tiled", "nan-check", "txt2img512", "upscaler", "upscale2048", "depth-estimator512", "lora512", "lora-runtime512" };
    /// <summary>Stages that load the random single-file checkpoint instead of the random folders.</summary>
    public static readonly string[] SingleFileStages = { "load-single-file", "single-file-txt2img512" };

    /// <summary>Stages that build their random weights in memory: they need no saved folders.</summary>
    public static readonly string[] InMemoryStages = { "upscaler", "depth-estimator512", "nan-check" };

    public static readonly string[] QuickStages = { "kernels", "load-fp32", "load-fp16", "text", "unet512", "vae512", "nan-check" };

    public string? OutPath { get; set; }
    public bool Quick { get; set; }
    public List<string> Stages { get; set; } = new();
    public List<string> DTypes { get; set; } = new() { "float32", "bfloat16" };
    public string? ModelFolder { get; set; }
    public string? SaveFolder { get; set; }
    public int? Threads { get; set; }
    public int? Repeats { get; set; }
    public int Steps { get; set; } = 20;
    public bool HugePages { get; set; } = true;
    public bool ForceBf16 { get; set; }

    // Child-process mode: one stage in one dtype, result as JSON on stdout.
    public string? ChildStage { get; set; }

    public int RepeatCount => Repeats ?? (Quick ? 1 : 3);

    public const string Usage = """
        PSStableDiffusion.Bench [options]
          --out <file>           also write the JSON results to <file> (JSON always goes to stdout)
          --quick                1 timed run per stage after a warm-up, stages: kernels load-fp32 load-fp16 text unet512 vae512 nan-check
          --stages a,b,...       kernels, load-fp32, load-fp16, text, text-3chunks, unet512, unet512-3chunks, unet768,
                                 unet1024, vae512, vae768, vae1024, vae1024-tiled, nan-check,
                                 txt2img512, upscaler, upscale2048, depth-estimator512, lora512, lora-runtime512, load-single-file,
                                 single-file-txt2img512
                                 (the single-file stages are not in the default set; they write
                                 <save-folder>/sd21-768-v-single-file.safetensors, ~5.2 GB, once)
          --dtype a,b            float32, bfloat16 (default both)
          --model <folder>       a diffusers SD 2.x folder to measure (else random weights, saved to --save-folder)
          --save-folder <dir>    where random weights live as diffusers folders <dir>/fp32 and <dir>/fp16
                                 (default: $TMPDIR/psstablediffusion-bench); made on first use, reused after
          --threads N            libtorch intra-op threads (default: the engine's, libtorch's default capped at the usable processors)
          --repeats N            timed runs per stage (default 3, or 1 with --quick)
          --steps N              denoising steps of txt2img512 and single-file-txt2img512 (default 20)
          --no-huge-pages        do not ask libtorch for transparent huge pages (THP_MEM_ALLOC_ENABLE)
          --force-bf16           run bfloat16 UNet/VAE/txt2img/upscaler stages even on a CPU without bf16
                                 instructions (there bf16 convolutions run at ~1-7 GFLOP/s: a UNet step takes
                                 many minutes), instead of skipping them with an estimate
        Each stage runs in its own child process, so its peak resident memory is its own.
        """;

    public static BenchOptions Parse(string[] args)
    {
        var options = new BenchOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option '{args[i]}' needs a value.");
            static List<string> List(string value) => value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            switch (args[i])
            {
                case "--out": options.OutPath = Next(); break;
                case "--quick": options.Quick = true; break;
                case "--stages": options.Stages = List(Next()); break;
                case "--dtype": options.DTypes = List(Next()); break;
                case "--model": options.ModelFolder = Path.GetFullPath(Next()); break;
                case "--save-folder": options.SaveFolder = Path.GetFullPath(Next()); break;
                case "--threads": options.Threads = int.Parse(Next()); break;
                case "--repeats": options.Repeats = int.Parse(Next()); break;
                case "--steps": options.Steps = int.Parse(Next()); break;
                case "--child": options.ChildStage = Next(); break;
                case "--no-huge-pages": options.HugePages = false; break;
                case "--force-bf16": options.ForceBf16 = true; break;
                case "-h" or "--help": Console.Error.WriteLine(Usage); Environment.Exit(0); break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'.{Environment.NewLine}{Usage}");
            }
        }
        if (options.Stages.Count == 0) options.Stages = (options.Quick ? QuickStages : FullStages).ToList();
        foreach (var stage in options.Stages)
            if (!FullStages.Contains(stage) && !SingleFileStages.Contains(stage) && stage is not ("save" or "save-single-file"))
                throw new ArgumentException($"Unknown stage '{stage}'. Stages: {string.Join(", ", FullStages.Concat(SingleFileStages))}.");
        foreach (var dtype in options.DTypes)
            if (dtype is not ("float32" or "bfloat16"))
                throw new ArgumentException($"Unknown dtype '{dtype}': use float32 or bfloat16 (float16 is never used on the CPU).");
        options.SaveFolder ??= Path.Combine(Path.GetTempPath(), "psstablediffusion-bench");
        return options;
    }

    /// <summary>The arguments a child needs to run <paramref name="stage"/> in <paramref name="dtype"/>.</summary>
    public List<string> ChildArguments(string stage, string dtype, string modelFolder)
    {
        var list = new List<string> { "--child", stage, "--dtype", dtype, "--model", modelFolder,
            "--repeats", RepeatCount.ToString(), "--steps", Steps.ToString(), "--save-folder", SaveFolder! };
        if (Quick) list.Add("--quick");
        if (!HugePages) list.Add("--no-huge-pages");
        if (Threads is { } threads) { list.Add("--threads"); list.Add(threads.ToString()); }
        return list;
    }
}
