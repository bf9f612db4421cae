"""How the CrashLoopBackOff runbook reads an application's last words, on real texts: the line
that says what failed (not a stack-trace footer, not an exception's bare class name) in Rust,
.NET, PHP, Ruby, Go, Java and Node logs; a dependency that answered and refused the credentials;
settings named with hyphens, and every one a log names; runtime texts the runbook must know.
"""

from __future__ import annotations

import pytest

from kubetriage.playbooks.crashloop.messages import Signal, headline, scan_log, start_error

HEADLINES = {
    "rust-panic-message-on-the-next-line": (
        "thread 'main' panicked at src/main.rs:27:51:\n"
        "called `Result::unwrap()` on an `Err` value: Os { code: 111, kind: ConnectionRefused, "
        'message: "Connection refused" }\n'
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        "thread 'main' panicked at src/main.rs:27:51: called `Result::unwrap()` on an `Err` value: "
        'Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }',
    ),
    "rust-anyhow-error-chain": (
        "Error: failed to load configuration\n\nCaused by:\n"
        "    0: failed to read /etc/tiles/config.toml\n"
        "    1: No such file or directory (os error 2)\n",
        "Error: failed to load configuration: failed to read /etc/tiles/config.toml: No such "
        "file or directory (os error 2)",
    ),
    "dotnet-inner-exception-and-footer": (
        "Unhandled exception. Npgsql.NpgsqlException (0x80004005): Failed to connect to "
        "10.100.3.4:5432\n"
        " ---> System.Net.Sockets.SocketException (111): Connection refused\n"
        "   at Npgsql.Internal.NpgsqlConnector.Connect(NpgsqlTimeout timeout)\n"
        "   --- End of inner exception stack trace ---\n"
        "   at Npgsql.Internal.NpgsqlConnector.Connect(NpgsqlTimeout timeout)\n"
        "   at Program.<Main>$(String[] args) in /src/Api/Program.cs:line 18\n",
        "System.Net.Sockets.SocketException (111): Connection refused",
    ),
    "dotnet-stack-trace-from-previous-location": (
        "crit: Microsoft.AspNetCore.Hosting.Diagnostics[6]\n"
        "      Application startup exception\n"
        "      System.IO.IOException: Failed to bind to address http://[::]:8080: address "
        "already in use.\n"
        "       ---> System.Net.Sockets.SocketException (98): Address already in use\n"
        "         at System.Net.Sockets.Socket.DoBind(EndPoint endPointSnapshot, SocketAddress "
        "socketAddress)\n"
        "         --- End of inner exception stack trace ---\n"
        "         at Microsoft.AspNetCore.Server.Kestrel.Core.Internal.AddressBinder."
        "BindEndpointAsync(ListenOptions endpoint, AddressBindContext context, CancellationToken "
        "cancellationToken)\n"
        "      --- End of stack trace from previous location ---\n"
        "         at Microsoft.AspNetCore.Hosting.GenericWebHostService.StartAsync("
        "CancellationToken cancellationToken)\n",
        "System.Net.Sockets.SocketException (98): Address already in use",
    ),
    "php-uncaught-exception": (
        "PHP Fatal error:  Uncaught RedisException: Connection refused in "
        "/var/www/html/src/Cache.php:21\n"
        "Stack trace:\n"
        "#0 /var/www/html/src/Cache.php(21): Redis->connect('10.100.9.2', 6379)\n"
        "#1 /var/www/html/public/index.php(12): App\\Cache->__construct()\n"
        "#2 {main}\n"
        "  thrown in /var/www/html/src/Cache.php on line 21\n",
        "PHP Fatal error:  Uncaught RedisException: Connection refused in "
        "/var/www/html/src/Cache.php:21",
    ),
    "laravel-collision-class-name-above-the-message": (
        "\n   Illuminate\\Database\\QueryException \n\n"
        "  SQLSTATE[HY000] [2002] Connection refused (Connection: mysql, SQL: select * from "
        "`settings`)\n\n"
        "  at vendor/laravel/framework/src/Illuminate/Database/Connection.php:825\n"
        "  ➜ 825▕             throw new QueryException(\n\n"
        "      +41 vendor frames \n"
        "  42  artisan:13\n"
        "      Illuminate\\Foundation\\Application::handleCommand()\n",
        "SQLSTATE[HY000] [2002] Connection refused (Connection: mysql, SQL: select * from "
        "`settings`)",
    ),
    "ruby-message-first-frames-after": (
        "/usr/local/bundle/gems/pg-1.5.6/lib/pg/connection.rb:701:in `async_connect_or_reset': "
        'connection to server at "10.100.14.2", port 5432 failed: Connection refused (PG::'
        "ConnectionBad)\n"
        "\tfrom /usr/local/bundle/gems/pg-1.5.6/lib/pg/connection.rb:843:in `connect_to_hosts'\n"
        "\tfrom /usr/local/bundle/gems/activerecord-7.1.3/lib/active_record/connection_adapters/"
        "postgresql_adapter.rb:51:in `new_client'\n"
        "\tfrom bin/rails:4:in `<main>'\n",
        "/usr/local/bundle/gems/pg-1.5.6/lib/pg/connection.rb:701:in `async_connect_or_reset': "
        'connection to server at "10.100.14.2", port 5432 failed: Connection refused '
        "(PG::ConnectionBad)",
    ),
    "go-log-fatal": (
        "2025/06/12 09:28:20 loading config from /etc/api/config.yaml\n"
        "2025/06/12 09:28:20 main.go:42: listen tcp :8080: bind: address already in use\n",
        "2025/06/12 09:28:20 main.go:42: listen tcp :8080: bind: address already in use",
    ),
    "java-bare-class-cause-below-a-message": (
        "Caused by: org.springframework.beans.BeanInstantiationException: Failed to instantiate "
        "[com.acme.billing.StripeClient]: Constructor threw exception\n"
        "\tat org.springframework.beans.BeanUtils.instantiateClass(BeanUtils.java:222)\n"
        "Caused by: java.lang.NullPointerException\n"
        "\tat com.acme.billing.StripeClient.<init>(StripeClient.java:31)\n"
        "\t... 40 common frames omitted\n",
        "org.springframework.beans.BeanInstantiationException: Failed to instantiate "
        "[com.acme.billing.StripeClient]: Constructor threw exception",
    ),
    "java-deepest-cause": (
        'Exception in thread "main" java.lang.ExceptionInInitializerError\n'
        "\tat com.acme.Main.main(Main.java:12)\n"
        'Caused by: java.lang.NumberFormatException: For input string: "8O80"\n'
        "\tat java.base/java.lang.NumberFormatException.forInputString("
        "NumberFormatException.java:67)\n"
        "\t... 1 more\n",
        'java.lang.NumberFormatException: For input string: "8O80"',
    ),
    "node-uncaught-with-error-properties-and-version-footer": (
        "node:internal/process/promises:391\n"
        "    triggerUncaughtException(err, true /* fromPromise */);\n"
        "    ^\n\n"
        "Error: getaddrinfo ENOTFOUND catalog-db\n"
        "    at GetAddrInfoReqWrap.onlookupall [as oncomplete] (node:dns:120:26) {\n"
        "  errno: -3008,\n"
        "  code: 'ENOTFOUND',\n"
        "  syscall: 'getaddrinfo',\n"
        "  hostname: 'catalog-db'\n"
        "}\n\n"
        "Node.js v20.14.0\n",
        "Error: getaddrinfo ENOTFOUND catalog-db",
    ),
}


@pytest.mark.parametrize(("log", "expected"), HEADLINES.values(), ids=HEADLINES)
def test_the_last_error_is_the_line_that_says_what_failed(log: str, expected: str) -> None:
    assert headline(log) == expected


CREDENTIALS = {
    "psql": (
        'psql: error: connection to server at "postgres" (10.100.0.21), port 5432 failed: '
        'FATAL:  password authentication failed for user "app"',
        "postgres",
        5432,
    ),
    "pgx-sasl": (
        "failed to connect to `user=orders database=orders`: 10.100.88.14:5432 "
        "(postgres.data.svc.cluster.local): failed SASL auth: FATAL: password authentication "
        'failed for user "orders" (SQLSTATE 28P01)',
        "postgres.data.svc.cluster.local",
        5432,
    ),
    "pgjdbc": (
        'org.postgresql.util.PSQLException: FATAL: password authentication failed for user "app"',
        None,
        None,
    ),
    "lib-pq": ('pq: password authentication failed for user "app"', None, None),
    "asyncpg": (
        'asyncpg.exceptions.InvalidPasswordError: password authentication failed for user "app"',
        None,
        None,
    ),
    "go-mysql": (
        "Error 1045 (28000): Access denied for user 'app'@'10.0.1.5' (using password: YES)",
        None,
        None,
    ),
    "pdo-mysql": (
        "SQLSTATE[HY000] [1045] Access denied for user 'catalog'@'10.0.1.131' (using password: "
        "YES)",
        None,
        None,
    ),
    "mssql": ("Login failed for user 'sa'.", None, None),
    "redis-wrongpass": (
        "[ioredis] Unhandled error event: ReplyError: WRONGPASS invalid username-password pair or "
        "user is disabled.",
        None,
        None,
    ),
    "redis-noauth": (
        "redis.exceptions.AuthenticationError: NOAUTH Authentication required.",
        None,
        None,
    ),
    "kafka-java": (
        "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512",
        None,
        None,
    ),
    "librdkafka": (
        "%3|1749720441.337|FAIL|rdkafka#producer-1| [thrd:sasl_ssl://kafka-0.kafka:9093/"
        "bootstrap]: sasl_ssl://kafka-0.kafka:9093/bootstrap: SASL authentication error: "
        "Authentication failed "
        "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256",
        "kafka-0.kafka",
        9093,
    ),
    "mongodb": ("MongoServerError: Authentication failed.", None, None),
    "rabbitmq": (
        "amqp.exceptions.AccessRefused: (0, 0): (403) ACCESS_REFUSED - Login was refused using "
        "authentication mechanism PLAIN. For details see the broker logfile.",
        None,
        None,
    ),
    "python-requests-401": (
        "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: "
        "https://api.stripe.com/v1/balance",
        "api.stripe.com",
        None,
    ),
    "go-http-401": (
        "failed to load feature flags: GET https://sdk.launchdarkly.com/sdk/latest-all: 401 "
        "Unauthorized",
        "sdk.launchdarkly.com",
        None,
    ),
    "axios-403": ("AxiosError: Request failed with status code 403", None, None),
}


@pytest.mark.parametrize(("line", "host", "port"), CREDENTIALS.values(), ids=CREDENTIALS)
def test_a_dependency_that_refused_the_credentials_is_read_as_such(
    line: str, host: str | None, port: int | None
) -> None:
    found = scan_log(f"starting\n{line}\n")
    assert [f.signal for f in found] == [Signal.CREDENTIALS], found
    assert (found[0].subject, found[0].port) == (host, port)


NOT_CREDENTIALS = {
    "access-log-401-it-served": (
        '10.0.2.99 - - [12/Jun/2025:09:28:21 +0000] "POST /v1/admin/users HTTP/1.1" 401 33 "-" '
        '"curl/8.7.1"'
    ),
    "uvicorn-access-log-403": 'INFO:     10.0.3.88:51422 - "GET /admin HTTP/1.1" 403 Forbidden',
    "password-reset": "INFO password reset email sent to user 4711",
    "auth-middleware-says-it-rejects": "WARN auth: rejected request without token from 10.0.1.9",
}


@pytest.mark.parametrize("line", NOT_CREDENTIALS.values(), ids=NOT_CREDENTIALS)
def test_what_the_app_itself_answers_is_not_a_refused_credential(line: str) -> None:
    assert all(f.signal != Signal.CREDENTIALS for f in scan_log(line))


def test_settings_keep_their_hyphens_and_every_missing_one_is_read() -> None:
    log = (
        "[2025/06/12 09:28:20] [main.go:54] invalid configuration:\n"
        "  provider missing setting: client-id\n"
        "  missing setting: client-secret or client-secret-file\n"
    )
    keys = [f.subject for f in scan_log(log) if f.signal == Signal.CONFIG_KEY]
    assert keys == ["client-id", "client-secret"]


def test_a_refused_connection_named_host_first_is_read_with_its_host() -> None:
    line = (
        "org.postgresql.util.PSQLException: Connection to db:5432 refused. Check that the "
        "hostname and port are correct and that the postmaster is accepting TCP/IP connections."
    )
    (found,) = scan_log(line)
    assert (found.signal, found.subject, found.port, found.host_ip) == (
        Signal.DEPENDENCY,
        "db",
        5432,
        None,
    )


def test_the_loggers_own_hostname_field_is_not_the_host_it_could_not_reach() -> None:
    log = (
        '{"level":30,"pid":18,"hostname":"cart-6d8f7b9c5-2xkqp","msg":"cart service starting"}\n'
        "[ioredis] Unhandled error event: Error: connect ECONNREFUSED 10.100.45.12:6379\n"
    )
    (found,) = [f for f in scan_log(log) if f.signal == Signal.DEPENDENCY]
    assert (found.subject, found.host_ip, found.port) == (None, "10.100.45.12", 6379)


def test_crun_writes_exec_format_error_in_its_own_words() -> None:
    found = start_error("exec container process `/usr/local/bin/thumbnailer`: Exec format error")
    assert found is not None
    assert (found.signal, found.subject) == (Signal.EXEC_FORMAT, "/usr/local/bin/thumbnailer")
