// The client side of the cluster's coordinator: where it is (--coordinator, else CNCLIP_COORDINATOR, else the local
// default), the token every call carries (CNCLIP_TOKEN, in the "cnclip-token" header), the h2c channel, and the one
// place that turns gRPC failures into one-line errors and exit codes.
using System.CommandLine;
using ChineseClip.Contracts.Coordinator;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace ChineseClip.Cli.Cluster;

/// <summary>The coordinator a command talks to, and the token its calls carry (null: none).</summary>
public sealed record CoordinatorTarget(string Address, string? Token)
{
    public const string DefaultAddress = "http://127.0.0.1:5290";
    public const string AddressVariable = "CNCLIP_COORDINATOR";
    public const string TokenVariable = "CNCLIP_TOKEN";

    /// <summary>The --coordinator option wins over CNCLIP_COORDINATOR, which wins over the default; empty values count as unset.</summary>
    public static CoordinatorTarget Resolve(string? addressOption, Func<string, string?> environment)
    {
        string address = NonEmpty(addressOption) ?? NonEmpty(environment(AddressVariable)) ?? DefaultAddress;
        return new CoordinatorTarget(address.Trim(), NonEmpty(environment(TokenVariable)));
    }

    static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}

public static class CoordinatorClient
{
    public const string TokenHeader = "cnclip-token";

    /// <summary>The --coordinator option every cluster verb takes.</summary>
    public static Option<string?> AddressOption() => new("--coordinator")
    {
        Description = $"the coordinator's address (default: ${CoordinatorTarget.AddressVariable}, else {CoordinatorTarget.DefaultAddress}); "
            + $"${CoordinatorTarget.TokenVariable}, when set, is sent as the cluster's token",
    };

    /// <summary>Runs <paramref name="body"/> with a client of the coordinator. A failed call becomes a
    /// <see cref="CliException"/> whose one line says what went wrong (naming <paramref name="scheduleId"/> when the
    /// coordinator does not know it); exit code 2 for what the user can fix, 1 for the rest.</summary>
    public static T Call<T>(CoordinatorTarget target, string? scheduleId, Func<Coordinator.CoordinatorClient, T> body)
    {
        using var channel = Open(target.Address);
        CallInvoker invoker = channel.CreateCallInvoker();
        if (target.Token is string token)
        {
            invoker = invoker.Intercept(headers =>
            {
                headers.Add(TokenHeader, token);
                return headers;
            });
        }
        try
        {
            return body(new Coordinator.CoordinatorClient(invoker));
        }
        catch (RpcException e)
        {
            throw Explain(e, target.Address, scheduleId);
        }
    }

    static GrpcChannel Open(string address)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new CliException($"coordinator address '{address}': expected http://HOST:PORT (or https://)");
        // http:// is HTTP/2 without TLS (h2c), which is how the coordinator listens inside the cluster.
        return GrpcChannel.ForAddress(uri, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = TimeSpan.FromSeconds(10),
                // A watch may sit idle for long; pings notice a coordinator that went away without closing the stream.
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            },
        });
    }

    internal static CliException Explain(RpcException e, string address, string? scheduleId)
    {
        string detail = e.Status.Detail;
        return e.StatusCode switch
        {
            StatusCode.Unavailable => new CliException($"cannot reach the coordinator at {address} ({Reason(e)})"),
            StatusCode.NotFound when scheduleId is not null =>
                new CliException($"schedule '{scheduleId}': not found on the coordinator at {address}"),
            StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.AlreadyExists or StatusCode.OutOfRange
                or StatusCode.NotFound => new CliException(detail),
            StatusCode.Unauthenticated or StatusCode.PermissionDenied => new CliException(
                $"the coordinator at {address} refused the call ({detail}); set ${CoordinatorTarget.TokenVariable} to the cluster's token"),
            _ => new CliException($"the coordinator at {address} answered {e.StatusCode}: {detail}", ExitCodes.Failure),
        };
    }

    // The transport's own words (e.g. "Connection refused"), else the status detail.
    static string Reason(RpcException e)
    {
        Exception? inner = e.Status.DebugException;
        while (inner?.InnerException is not null) inner = inner.InnerException;
        string reason = inner?.Message is { Length: > 0 } m ? m : e.Status.Detail;
        return reason.Length > 0 ? reason : "no answer";
    }
}
