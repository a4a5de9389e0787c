namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// Download progress: the file being fetched (<see cref="File"/>, repository path) with its bytes, and the whole
/// download's bytes (files already in the cache are not counted). <see cref="BytesPerSecond"/> is the average speed
/// of this download so far.
/// </summary>
public readonly record struct HubProgress(
    string File,
    long FileBytesDone,
    long FileBytesTotal,
    long BytesDone,
    long BytesTotal,
    double BytesPerSecond);
