using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// A tensor whose arithmetic with numbers keeps each number's native Scalar alive until libtorch has used it. Formulas
/// read as written (<c>sigmaT / sigmaS * x - alphaT * h * d0</c>) once their tensors are of this type.
/// </summary>
/// <remarks>
/// Why: TorchSharp 0.107 turns a number into a finalizable <c>Scalar</c> and passes only its handle to libtorch, so
/// the object is unreachable during the native call; a garbage collection started by another thread in that window
/// lets the finalizer free the native scalar while libtorch reads it ("Unknown scalar type", "toFloat", or a wrong
/// number). The hidden alpha of <c>a + b</c> is such a number too. Each operator here makes the Scalar itself, calls
/// the same TorchSharp method the plain operator calls (so results are bit-identical), and disposes it afterwards.
/// Integers stay integers (libtorch keeps an int64 and a double apart); a float32 number widens to double, as libtorch
/// itself stores it.
/// dotnet/TorchSharp PR #1434 (open) would dispose these Scalars upstream; this type can go once a release has it.
/// </remarks>
internal readonly struct ScalarSafeTensor(Tensor tensor)
{
    /// <summary>The alpha TorchSharp passes for a plain <c>a + b</c>: an int 1, held for the process so never
    /// finalized.</summary>
    private static readonly Scalar One = 1.ToScalar();

    public Tensor Tensor { get; } = tensor;

    public static implicit operator ScalarSafeTensor(Tensor tensor) => new(tensor);

    public static implicit operator Tensor(ScalarSafeTensor value) => value.Tensor;

    public static ScalarSafeTensor operator +(ScalarSafeTensor left, ScalarSafeTensor right) =>
        Kept(left.Tensor.add(right.Tensor, One), left, right);

    public static ScalarSafeTensor operator +(ScalarSafeTensor left, double right) => Add(left, right.ToScalar());

    public static ScalarSafeTensor operator +(double left, ScalarSafeTensor right) => Add(right, left.ToScalar());

    public static ScalarSafeTensor operator +(ScalarSafeTensor left, long right) => Add(left, right.ToScalar());

    public static ScalarSafeTensor operator -(ScalarSafeTensor left, ScalarSafeTensor right) =>
        Kept(left.Tensor.sub(right.Tensor), left, right);

    public static ScalarSafeTensor operator -(ScalarSafeTensor left, double right) => Subtract(left, right.ToScalar());

    public static ScalarSafeTensor operator -(ScalarSafeTensor left, long right) => Subtract(left, right.ToScalar());

    /// <summary>TorchSharp's <c>number - tensor</c>: the negated tensor plus the number (alpha 1).</summary>
    public static ScalarSafeTensor operator -(double left, ScalarSafeTensor right) =>
        SubtractFrom(left.ToScalar(), right);

    public static ScalarSafeTensor operator -(long left, ScalarSafeTensor right) =>
        SubtractFrom(left.ToScalar(), right);

    public static ScalarSafeTensor operator -(ScalarSafeTensor value) => Kept(value.Tensor.neg(), value, value);

    public static ScalarSafeTensor operator *(ScalarSafeTensor left, ScalarSafeTensor right) =>
        Kept(left.Tensor.mul(right.Tensor), left, right);

    public static ScalarSafeTensor operator *(double left, ScalarSafeTensor right) => Multiply(right, left.ToScalar());

    public static ScalarSafeTensor operator *(ScalarSafeTensor left, double right) => Multiply(left, right.ToScalar());

    public static ScalarSafeTensor operator *(long left, ScalarSafeTensor right) => Multiply(right, left.ToScalar());

    public static ScalarSafeTensor operator *(ScalarSafeTensor left, long right) => Multiply(left, right.ToScalar());

    public static ScalarSafeTensor operator /(ScalarSafeTensor left, ScalarSafeTensor right) =>
        Kept(left.Tensor.div(right.Tensor), left, right);

    public static ScalarSafeTensor operator /(ScalarSafeTensor left, double right) => Divide(left, right.ToScalar());

    public static ScalarSafeTensor operator /(ScalarSafeTensor left, long right) => Divide(left, right.ToScalar());

    // A plain tensor on either side: the same operators, so that x.ScalarSafe() + residual needs no second conversion.
    public static ScalarSafeTensor operator +(ScalarSafeTensor left, Tensor right) =>
        left + new ScalarSafeTensor(right);

    public static ScalarSafeTensor operator +(Tensor left, ScalarSafeTensor right) =>
        new ScalarSafeTensor(left) + right;

    public static ScalarSafeTensor operator -(ScalarSafeTensor left, Tensor right) =>
        left - new ScalarSafeTensor(right);

    public static ScalarSafeTensor operator -(Tensor left, ScalarSafeTensor right) =>
        new ScalarSafeTensor(left) - right;

    public static ScalarSafeTensor operator *(ScalarSafeTensor left, Tensor right) =>
        left * new ScalarSafeTensor(right);

    public static ScalarSafeTensor operator *(Tensor left, ScalarSafeTensor right) =>
        new ScalarSafeTensor(left) * right;

    public static ScalarSafeTensor operator /(ScalarSafeTensor left, Tensor right) =>
        left / new ScalarSafeTensor(right);

    public static ScalarSafeTensor operator /(Tensor left, ScalarSafeTensor right) =>
        new ScalarSafeTensor(left) / right;

    /// <summary>TorchSharp's <c>number / tensor</c>: the reciprocal times the number.</summary>
    public static ScalarSafeTensor operator /(double left, ScalarSafeTensor right)
    {
        using var number = left.ToScalar();
        var reciprocal = right.Tensor.reciprocal();
        return Kept(reciprocal.mul(number), right, reciprocal);
    }

    public static ScalarSafeTensor operator /(long left, ScalarSafeTensor right)
    {
        using var number = left.ToScalar();
        var reciprocal = right.Tensor.reciprocal();
        return Kept(reciprocal.mul(number), right, reciprocal);
    }

    /// <summary>TorchSharp's <c>add_(other)</c>, in place (alpha 1); returns this tensor, as
    /// <c>add_</c> does.</summary>
    public Tensor AddInPlace(ScalarSafeTensor addend)
    {
        var result = Tensor.add_(addend.Tensor, One);
        GC.KeepAlive(addend.Tensor);
        return result;
    }

    /// <summary>TorchSharp's <c>div_(number)</c>, in place; returns this tensor.</summary>
    public Tensor DivideInPlace(double divisor)
    {
        using var number = divisor.ToScalar();
        return Tensor.div_(number);
    }

    /// <summary>TorchSharp's <c>mul_(number)</c>, in place; returns this tensor.</summary>
    public Tensor MultiplyInPlace(double factor)
    {
        using var number = factor.ToScalar();
        return Tensor.mul_(number);
    }

    /// <summary>TorchSharp's <c>fill_(number)</c>, in place; returns this tensor.</summary>
    public Tensor Fill(double value)
    {
        using var number = value.ToScalar();
        return Tensor.fill_(number);
    }

    /// <summary>TorchSharp's <c>tensor &gt;= number</c>.</summary>
    public Tensor GreaterOrEqual(double value)
    {
        using var number = value.ToScalar();
        return Tensor.ge(number);
    }

    /// <summary>TorchSharp's <c>tensor &gt; number</c>.</summary>
    public Tensor Greater(double value)
    {
        using var number = value.ToScalar();
        return Tensor.gt(number);
    }

    /// <summary>TorchSharp's <c>tensor &lt; number</c>.</summary>
    public Tensor Less(double value)
    {
        using var number = value.ToScalar();
        return Tensor.lt(number);
    }

    /// <summary>TorchSharp's <c>eq(number)</c> with an integer.</summary>
    public Tensor Equal(long value)
    {
        using var number = value.ToScalar();
        return Tensor.eq(number);
    }

    /// <summary><c>torch.arange(start, end)</c> with integer bounds (libtorch stores both as int64, as the implicit
    /// conversions of an int or a long do).</summary>
    public static Tensor Arange(long start, long end, ScalarType dtype, Device device)
    {
        using Scalar first = start.ToScalar(), last = end.ToScalar();
        return torch.arange(first, last, dtype: dtype, device: device);
    }

    /// <summary><c>torch.arange(end)</c> with an integer bound.</summary>
    public static Tensor Arange(long end, ScalarType dtype, Device device)
    {
        using var last = end.ToScalar();
        return torch.arange(last, dtype: dtype, device: device);
    }

    public ScalarSafeTensor Pow(double exponent)
    {
        using var number = exponent.ToScalar();
        return Kept(Tensor.pow(number), this, this);
    }

    public ScalarSafeTensor Pow(long exponent)
    {
        using var number = exponent.ToScalar();
        return Kept(Tensor.pow(number), this, this);
    }

    public ScalarSafeTensor Clamp(double min, double max)
    {
        using Scalar low = min.ToScalar(), high = max.ToScalar();
        return Kept(Tensor.clamp(low, high), this, this);
    }

    public ScalarSafeTensor ClampMin(double min)
    {
        using var low = min.ToScalar();
        return Kept(Tensor.clamp_min(low), this, this);
    }

    private static ScalarSafeTensor Add(ScalarSafeTensor tensor, Scalar number)
    {
        using (number) return Kept(tensor.Tensor.add(number, One), tensor, tensor);
    }

    private static ScalarSafeTensor Subtract(ScalarSafeTensor tensor, Scalar number)
    {
        using (number) return Kept(tensor.Tensor.sub(number), tensor, tensor);
    }

    private static ScalarSafeTensor SubtractFrom(Scalar number, ScalarSafeTensor tensor)
    {
        using (number)
        {
            var negated = tensor.Tensor.negative();
            return Kept(negated.add(number, One), tensor, negated);
        }
    }

    private static ScalarSafeTensor Multiply(ScalarSafeTensor tensor, Scalar number)
    {
        using (number) return Kept(tensor.Tensor.mul(number), tensor, tensor);
    }

    private static ScalarSafeTensor Divide(ScalarSafeTensor tensor, Scalar number)
    {
        using (number) return Kept(tensor.Tensor.div(number), tensor, tensor);
    }

    /// <summary>
    /// Keeps the operands reachable until the result exists: a tensor made by an earlier operator of the same formula
    /// and held by no dispose scope would otherwise meet the same fate as the numbers.
    /// </summary>
    private static ScalarSafeTensor Kept(Tensor result, ScalarSafeTensor left, ScalarSafeTensor right)
    {
        GC.KeepAlive(left.Tensor);
        GC.KeepAlive(right.Tensor);
        return new ScalarSafeTensor(result);
    }
}
