using System.Diagnostics;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Unet;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Bench;

internal static partial class Stages
{
    /// <summary>
    /// A rank-64 LoRA on every Linear of the full-size SD 2.x UNet's transformers (attn1/attn2 q/k/v/out, proj_in/out,
    /// ff: what kohya trains by default), random weights: the time to merge it for a call and to take it out again, one
    /// UNet step at 512² (CFG batch 2) with it and without, the memory the merged weights hold during the call and
    /// what stays after, and the FLOPs that applying the factors at run time (y = Wx + s·B(Ax)) would add per step.
    /// </summary>
    private static void LoraStage(StageResult result, string folder, ScalarType dtype, int warmups, int repeats)
    {
        // The saved random folder, mapped copy-on-write as a user's model is: the merge must never write to it.
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(folder, "unet"), dtype, CPU);
        unet.eval();
        using var textEncoder = RandomWeights.Materialize(new CLIPTextModel(
            new CLIPTextConfig { HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 1, NumAttentionHeads = 2 }, dtype, META), dtype, 3);
        var loraPath = Path.Combine(Path.GetTempPath(), $"psstablediffusion-bench-lora-{Environment.ProcessId}.safetensors");
        try
        {
            result.Details["lora_linear_layers"] = WriteRank64Lora(unet, loraPath, out double runtimeFlop);
            result.Details["lora_file_bytes"] = new FileInfo(loraPath).Length;
            result.Details["runtime_factor_flop_per_step"] = runtimeFlop;
            var generator = new torch.Generator(7);
            using var sample = torch.randn(new long[] { 2, 4, 64, 64 }, generator: generator).to(dtype); // [2, 4, 64, 64]
            using var context = torch.randn(new long[] { 2, 77, 1024 }, generator: generator).to(dtype);  // [2, 77, 1024]
            using var timestep = torch.tensor(999.0f);
            Tensor? last = null;
            result.Flop = Flops.UNet512;
            result.Details["runtime_factor_flop_fraction"] = runtimeFlop / Flops.UNet512;

            // Wall time on a shared machine says little; the CPU seconds of this process say what the work costs.
            TimeModel(result, () => { last?.Dispose(); last = unet.forward(sample, timestep, context); }, warmups, repeats);
            result.Details["step_without_lora_s"] = Measure.Median(result.RunsS);
            result.Details["step_without_lora_cpu_s"] = Measure.Median(Measure.LastCpuSeconds);
            Memory(result, "before_apply");

            var clock = Stopwatch.StartNew();
            var cpu = Measure.CpuSeconds();
            var applied = AppliedLoras.Apply(unet, textEncoder, null, [new LoraRequest(loraPath, 1.0, 1.0)]);
            result.Details["apply_s"] = clock.Elapsed.TotalSeconds;
            result.Details["apply_cpu_s"] = Measure.CpuSeconds() - cpu;
            Memory(result, "applied");
            var withLora = Measure.Time(() => { last?.Dispose(); last = unet.forward(sample, timestep, context); }, 0, repeats, "UNet step with LoRA");
            result.Details["step_with_lora_s"] = Measure.Median(withLora);
            result.Details["step_with_lora_cpu_s"] = Measure.Median(Measure.LastCpuSeconds);
            clock.Restart();
            cpu = Measure.CpuSeconds();
            applied.Dispose();
            result.Details["remove_s"] = clock.Elapsed.TotalSeconds;
            result.Details["remove_cpu_s"] = Measure.CpuSeconds() - cpu;
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Memory(result, "after_remove");
            // The take-out trims the heap itself; a second trim shows whether anything freed is still kept.
            Engine.Runtime.TorchMemory.ReleaseFreeHeap();
            Memory(result, "after_remove_trimmed");
            Inspect(result, last!);
            result.Note = $"rank-64 kohya LoRA on the {result.Details["lora_linear_layers"]} transformer Linears of the SD 2.x UNet " +
                          "(random weights), merged per call; step 512², CFG batch 2";
        }
        finally
        {
            File.Delete(loraPath);
        }
    }

    /// <summary>
    /// The other way to apply the same LoRA: its factors run beside each layer at every step, y = Wx + s·B(Ax), with
    /// nothing merged. This times only the added work of one 512² step (CFG batch 2): for each of the 192 transformer
    /// Linears, s·up(down(x)) on an input of the layer's width and the token count it sees (4096 at the first level, a
    /// quarter per level down, 77 for the cross-attention keys/values), rank 64. A step run that way costs a plain step
    /// plus this (plus a hook per layer, not counted); compare with lora512's one-off merge.
    /// </summary>
    private static void LoraRuntimeStage(StageResult result, string folder, ScalarType dtype, int warmups, int repeats)
    {
        const int rank = 64;
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(folder, "unet"), dtype, CPU);
        var generator = new torch.Generator(11);
        var inputs = new Dictionary<(long Tokens, long Width), Tensor>();
        var outputs = new Dictionary<(long Tokens, long Width), Tensor>();
        var layers = new List<(Tensor Down, Tensor Up, Tensor Input, Tensor Output)>();
        double flop = 0;
        foreach (var (name, module) in unet.named_modules())
        {
            if (module is not Linear linear || !name.Contains(".attentions.", StringComparison.Ordinal)) continue;
            long outFeatures = linear.weight.shape[0], inFeatures = linear.weight.shape[1];
            long tokens = name.Contains(".attn2.to_k", StringComparison.Ordinal) || name.Contains(".attn2.to_v", StringComparison.Ordinal)
                ? 77 : 4096L >> (2 * LevelOf(name));
            if (!inputs.TryGetValue((tokens, inFeatures), out var input))
                inputs[(tokens, inFeatures)] = input = torch.randn(new long[] { 2, tokens, inFeatures }, generator: generator).to(dtype); // [2, tokens, in]
            var down = (torch.randn(new long[] { rank, inFeatures }, generator: generator) / Math.Sqrt(inFeatures)).to(dtype);   // [r, in]
            var up = (torch.randn(new long[] { outFeatures, rank }, generator: generator) * 1e-3).to(dtype);                      // [out, r]
            // Stands for the layer's own Wx, which the factors' result is added to.
            if (!outputs.TryGetValue((tokens, outFeatures), out var output))
                outputs[(tokens, outFeatures)] = output = torch.zeros(new long[] { 2, tokens, outFeatures }, dtype);             // [2, tokens, out]
            layers.Add((down, up, input, output));
            flop += 2.0 * 2 * tokens * rank * (inFeatures + outFeatures);
        }
        try
        {
            result.Flop = flop;
            result.Details["lora_linear_layers"] = layers.Count;
            result.Details["runtime_factor_flop_fraction"] = flop / Flops.UNet512;
            using var noGrad = no_grad();
            const double scale = 1.0; // alpha 64 / rank 64
            TimeModel(result, () =>
            {
                foreach (var (down, up, input, output) in layers)
                {
                    using var hidden = nn.functional.linear(input, down);                                 // [2, tokens, r]
                    using var change = nn.functional.linear(hidden, up);                                  // [2, tokens, out]
                    output.add_(change, alpha: scale);
                }
            }, warmups, repeats);
            result.Details["factors_per_step_cpu_s"] = Measure.Median(Measure.LastCpuSeconds);
            result.Note = $"rank-64 factors beside the {layers.Count} transformer Linears of the SD 2.x UNet, one 512² step's worth " +
                          "(CFG batch 2): the work y = Wx + s·B(Ax) adds to every step";
            Inspect(result, layers[^1].Output.clone());
        }
        finally
        {
            foreach (var (down, up, _, _) in layers) { down.Dispose(); up.Dispose(); }
            foreach (var tensor in inputs.Values.Concat(outputs.Values)) tensor.Dispose();
        }
    }

    /// <summary>RSS, its heap and mapped-file parts, and the tensors that hold native memory, at <paramref name="when"/>.</summary>
    private static void Memory(StageResult result, string when)
    {
        result.Details[$"rss_{when}_bytes"] = Measure.CurrentBytes();
        if (Measure.StatusBytes("RssAnon") is { } anon) result.Details[$"rss_anon_{when}_bytes"] = anon;
        if (Measure.StatusBytes("RssFile") is { } file) result.Details[$"rss_file_{when}_bytes"] = file;
        result.Details[$"live_tensors_{when}"] = Engine.Runtime.TensorAccounting.LiveTensors;
    }

    /// <summary>Writes a rank-64 kohya LoRA for every Linear under the UNet's attentions; returns how many, and the
    /// FLOPs that running its factors beside the layers would add to one CFG-batch-2 step at 512².</summary>
    private static int WriteRank64Lora(UNet2DConditionModel unet, string path, out double runtimeFlop)
    {
        const int rank = 64;
        var generator = new torch.Generator(11);
        var tensors = new List<(string, Tensor)>();
        runtimeFlop = 0;
        foreach (var (name, module) in unet.named_modules())
        {
            if (module is not Linear linear || !name.Contains(".attentions.", StringComparison.Ordinal)) continue;
            long outFeatures = linear.weight.shape[0], inFeatures = linear.weight.shape[1];
            var key = "lora_unet_" + name.Replace('.', '_');
            tensors.Add((key + ".lora_down.weight", torch.randn(new long[] { rank, inFeatures }, generator: generator) / Math.Sqrt(inFeatures)));
            tensors.Add((key + ".lora_up.weight", torch.randn(new long[] { outFeatures, rank }, generator: generator) * 1e-3));
            tensors.Add((key + ".alpha", torch.tensor((float)rank)));
            // Tokens this layer sees at 512² (latent 64²): 4096 at the first level, a quarter per level down; cross-attention
            // keys/values see the 77 text tokens. Batch 2.
            long tokens = name.Contains(".attn2.to_k", StringComparison.Ordinal) || name.Contains(".attn2.to_v", StringComparison.Ordinal)
                ? 77 : 4096L >> (2 * LevelOf(name));
            runtimeFlop += 2.0 * 2 * tokens * rank * (inFeatures + outFeatures);
        }
        SafeTensorsWriter.Write(path, tensors);
        foreach (var (_, tensor) in tensors) tensor.Dispose();
        return tensors.Count / 3;
    }

    /// <summary>Resolution level of a UNet module path (0 = 64² latent at 512²): down_blocks.i, up_blocks.(3-i), mid 3.</summary>
    private static int LevelOf(string name)
    {
        var parts = name.Split('.');
        return parts[0] switch
        {
            "down_blocks" => int.Parse(parts[1]),
            "up_blocks" => 3 - int.Parse(parts[1]),
            _ => 3,
        };
    }
}
