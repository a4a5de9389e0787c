using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PSStableDiffusion.Engine.Text;

/// <summary>One prompt encoded for the text encoder.</summary>
/// <param name="Ids">Exactly <see cref="ClipTokenizer.ModelMaxLength"/> ids: BOS, text tokens, EOS, padding.</param>
/// <param name="TextTokenCount">Text tokens before truncation (BOS/EOS not counted).</param>
/// <param name="Truncated">True when text tokens were dropped to fit; see <paramref name="DroppedText"/>.</param>
/// <param name="DroppedText">The decoded text of the dropped tokens (what diffusers prints in its
/// warning), or "".</param>
public sealed record ClipEncoding(int[] Ids, int TextTokenCount, bool Truncated, string DroppedText);
