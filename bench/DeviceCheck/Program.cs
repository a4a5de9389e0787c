using System.Text.Json;
using System.Text.Json.Nodes;
using PSStableDiffusion.DeviceCheck;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;

// PSStableDiffusion.DeviceCheck <devices|golden|bench> [options]: see Usage. The JSON result goes to stdout (and
// --out); progress goes to stderr. Exit code 0 when every check passed, 1 when one failed, 2 on bad arguments.
const string Usage = """
    PSStableDiffusion.DeviceCheck devices|golden|bench [options]
      devices                 the devices libtorch sees (Get-SDDevice's view) and the libtorch in use
      golden                  the six golden pipeline cases (tests/golden) on --device in --precision: every
                              intermediate within the golden tolerances and the image within 2 levels (float32);
                              for float16/bfloat16 the image against the same device's float32 image
      bench                   full-size SD 2.1 768-v, random weights: UNet step and VAE decode at 512², 768², 1024²,
                              one whole 768² image (--steps DDIM steps, CFG 7.5)
    options:
      --device cpu|cuda[:N]   default cpu
      --precision float32|float16|bfloat16   default float32 (golden), float16 (bench on cuda)
      --libtorch <folder>     load libtorch from this folder (a libtorch archive or Python's torch package) first;
                              LibTorchSharp must sit next to this program (built for that libtorch)
      --golden <folder>       tests/golden (default: found above this program's folder)
      --reference <file>      golden, float16/bfloat16: diffusers_golden.py's JSON for this device and dtype; the bound
                              is then twice diffusers' own loss to that dtype (else a stated bound)
      --steps N               bench: denoising steps of the whole image (default 50)
      --repeats N             bench: timed runs per stage after one warm-up (default 5)
      --out <file>            also write the JSON result there
    """;

string command = args.Length > 0 ? args[0] : "--help";
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 1; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"Option '{args[i]}' needs a value.\n{Usage}");
        return 2;
    }
    options[args[i][2..]] = args[++i];
}
if (command is not ("devices" or "golden" or "bench"))
{
    Console.Error.WriteLine(Usage);
    return command is "--help" or "-h" ? 0 : 2;
}

string device = options.GetValueOrDefault("device", "cpu");
bool isCuda = device.StartsWith("cuda", StringComparison.Ordinal);
if (options.TryGetValue("libtorch", out var libTorch))
{
    try
    {
        LibTorchFolder.Load(libTorch, requireCuda: isCuda);
    }
    catch (LibTorchFolderException e)
    {
        Console.Error.WriteLine($"{e.Problem}: {e.Message}");
        return 1;
    }
}
else
{
    LibTorchFolder.EnsureLoaded(); // a settings file next to the program, as the module has
}
TorchLogging.QuietWarnings();
if (isCuda && command == "golden")
{
    // Parity means float32 here: libtorch lets cuDNN convolutions use TF32 (10-bit mantissa) unless told not to. The
    // bench keeps libtorch's defaults, as the engine does.
    torch.backends.cudnn.allow_tf32 = false;
    torch.backends.cuda.matmul.allow_tf32 = false;
}

JsonObject result;
bool passed;
try
{
    (result, passed) = command switch
    {
        "devices" => (DeviceReport.Describe(), true),
        "golden" => GoldenParity.Run(device, options.GetValueOrDefault("precision", "float32"), options.GetValueOrDefault("golden"),
            options.GetValueOrDefault("reference")),
        _ => GpuBench.Run(device, options.GetValueOrDefault("precision", isCuda ? "float16" : "float32"),
            int.Parse(options.GetValueOrDefault("steps", "50")), int.Parse(options.GetValueOrDefault("repeats", "5"))),
    };
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}
result["command"] = command;
if (isCuda) result["tf32"] = new JsonObject { ["cudnn"] = torch.backends.cudnn.allow_tf32, ["matmul"] = torch.backends.cuda.matmul.allow_tf32 };
result["libtorch"] = DeviceReport.LibTorch();
var json = result.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
Console.Out.WriteLine(json);
if (options.TryGetValue("out", out var outPath)) File.WriteAllText(outPath, json);
Console.Error.WriteLine(passed ? $"{command}: PASS" : $"{command}: FAIL");
return passed ? 0 : 1;
