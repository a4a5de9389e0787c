namespace PSStableDiffusion.Engine.Imaging;

/// <summary>A pixel rectangle on a contact sheet.</summary>
public readonly record struct PixelRect(int X, int Y, int Width, int Height)
{
    public int Right => X + Width;
    public int Bottom => Y + Height;
}
