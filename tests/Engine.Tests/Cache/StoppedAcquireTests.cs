using System.Text.RegularExpressions;
using PSStableDiffusion.Engine.Tests.ModelSources;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Cache;

/// <summary>
/// The soak's hang (issue 12, part 7): four calls waited forever on one model's gate, and no call held it. A cmdlet's
/// log is its WriteVerbose, which throws PipelineStoppedException once the pipeline is stopping, whatever
/// $VerbosePreference says. <see cref="ModelStore.Acquire(string, ComputeTarget, Action{string}?, CancellationToken)"/>
/// logs after the engine cache has handed it the lease ("Loaded …" after a load, which first hashes the weights;
/// "Using the cached …" otherwise), and a throw there lost the lease: Ctrl+C in that window shut every later call on
/// the model out. These tests throw from the log exactly there.
/// </summary>
public sealed class StoppedAcquireTests
{
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(60);

    private sealed class PipelineStoppingException() : Exception("The pipeline is stopping (as WriteVerbose throws).");

    [Theory]
    [InlineData("^Weights: ")]                  // right after a load, once the weights are hashed
    [InlineData(@"^Loaded \w+ model \(")]      // (not "Loaded UNet …", which the load itself logs)
    [InlineData("^Using the cached ")]          // a model already cached
    public void ALogThatThrowsAfterTheLeaseWasTaken_GivesTheLeaseBack(string stoppedAt)
    {
        using var temp = new TempFolder();
        var folder = temp.Combine("model");
        ModelSourceTestSupport.CopyDirectory(Golden.Path("txt2img_eps_dpmpp", "model"), folder);
        try
        {
            if (stoppedAt.StartsWith("^Using", StringComparison.Ordinal))
                using (ModelStore.Acquire(folder, ComputeTarget.Cpu32, null, default)) { }
            var lines = new List<string>();
            void StoppingLog(string line)
            {
                lines.Add(line);
                if (Regex.IsMatch(line, stoppedAt)) throw new PipelineStoppingException();
            }

            Assert.Throws<PipelineStoppingException>(() => ModelStore.Acquire(folder, ComputeTarget.Cpu32, StoppingLog, default));
            Assert.Contains(lines, line => Regex.IsMatch(line, stoppedAt));

            // The next call gets in (on the old code it waited here until its own time limit cancelled it).
            using var limit = new CancellationTokenSource(HangLimit);
            var next = Task.Run(() =>
            {
                using var lease = ModelStore.Acquire(folder, ComputeTarget.Cpu32, null, limit.Token);
                return lease.Engine.KindName;
            });
            Assert.Null(Record.Exception(() => next.Wait(HangLimit + TimeSpan.FromSeconds(5))));
            Assert.True(next.IsCompletedSuccessfully, "The call after the stopped one was shut out of the model.");
            Assert.False(Assert.Single(EngineCache.Shared.List(), e => e.Model == folder).Busy);
        }
        finally
        {
            EngineCache.Shared.Clear(e => e.Model == folder);
        }
    }
}
