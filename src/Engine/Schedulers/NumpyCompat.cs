namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// The few numpy routines diffusers builds its schedules with, reproduced operation for operation in float64 so that
/// timesteps and sigmas come out bit-identical (numpy 1.24 semantics).
/// </summary>
internal static class NumpyCompat
{
    /// <summary><c>np.linspace(start, stop, num)</c>: <c>y[i] = i * ((stop - start) / (num - 1)) + start</c>,
    /// last = stop.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        var result = new double[num];
        var div = num - 1;
        var delta = stop - start;
        if (div > 0)
        {
            var step = delta / div;
            for (var i = 0; i < num; i++)
                result[i] = step == 0 ? i / (double)div * delta + start : i * step + start;
            result[num - 1] = stop;
        }
        else
        {
            // num == 1: numpy multiplies the 0 index by delta (step is NaN and unused).
            for (var i = 0; i < num; i++) result[i] = i * delta + start;
        }
        return result;
    }

    /// <summary>
    /// <c>np.arange(start, stop, step)</c> for floats: numpy fills <c>start + i * d</c> with <c>d = (start
    /// + step) - start</c>.
    /// </summary>
    public static double[] Arange(double start, double stop, double step)
    {
        var length = (int)Math.Ceiling((stop - start) / step);
        if (length <= 0) return [];
        var result = new double[length];
        var delta = (start + step) - start;
        for (var i = 0; i < length; i++) result[i] = start + i * delta;
        return result;
    }

    /// <summary><c>np.round</c> (half to even), element-wise.</summary>
    public static double[] Round(double[] values) =>
        values.Select(v => Math.Round(v, MidpointRounding.ToEven)).ToArray();

    /// <summary><c>np.interp(x, np.arange(len(fp)), fp)</c>: linear interpolation on the integer grid,
    /// in float64.</summary>
    public static double Interp(double x, float[] fp)
    {
        var last = fp.Length - 1;
        if (x <= 0) return fp[0];
        if (x >= last) return fp[last];
        var j = (int)Math.Floor(x);
        var slope = ((double)fp[j + 1] - fp[j]) / 1.0;
        var result = slope * (x - j) + fp[j];
        return double.IsNaN(result) ? slope * (x - (j + 1)) + fp[j + 1] : result;
    }

    public static double[] Interp(double[] x, float[] fp) => x.Select(v => Interp(v, fp)).ToArray();

    public static double[] Reverse(double[] values) => Enumerable.Reverse(values).ToArray();

    public static float[] ToFloat32(IEnumerable<double> values) => values.Select(v => (float)v).ToArray();

    public static double[] ToFloat64(IEnumerable<float> values) => values.Select(v => (double)v).ToArray();
}
