# The example "user's own app" for pollen's two-way sync (issue #13): customers
# and their todos behind a small REST JSON API, in SQLite, from Debian 12's
# packages only (ruby, ruby-sinatra, ruby-sqlite3, ruby-webrick).
#
# Run:  APP_TOKEN=secret APP_DB=/tmp/app.db APP_PORT=0 ruby app.rb
# The first line on stdout is "listening on 127.0.0.1:PORT". See README.md.
#
# What a poller needs shapes the API: updated_at is a strictly increasing
# watermark (one clock for the whole app), lists page in (updated_at, id)
# order with an opaque cursor, deletions leave tombstones in GET /deleted, and
# creates honour Idempotency-Key so a retried create never makes a second row.
require "base64"
require "digest"
require "json"
require "securerandom"
require "time"
require "rack"
require "rack/handler/webrick"
require "sinatra/base"
require "sqlite3"
require "webrick"

module RubyApp
  TOKEN = ENV.fetch("APP_TOKEN", "")
  TEXT_COLUMNS = "id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL"
  SCHEMA = <<~SQL
    CREATE TABLE IF NOT EXISTS customers (#{TEXT_COLUMNS},
      email TEXT COLLATE NOCASE UNIQUE, first_name TEXT, last_name TEXT, phone TEXT,
      company TEXT, tags TEXT NOT NULL DEFAULT '[]', custom TEXT NOT NULL DEFAULT '{}');
    CREATE INDEX IF NOT EXISTS customers_updated ON customers (updated_at, id);
    CREATE TABLE IF NOT EXISTS todos (#{TEXT_COLUMNS},
      customer_id TEXT NOT NULL, title TEXT NOT NULL, notes TEXT, due_at TEXT,
      done INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX IF NOT EXISTS todos_updated ON todos (updated_at, id);
    CREATE INDEX IF NOT EXISTS todos_customer ON todos (customer_id);
    CREATE TABLE IF NOT EXISTS deleted (seq INTEGER PRIMARY KEY AUTOINCREMENT,
      kind TEXT NOT NULL, id TEXT NOT NULL, customer_id TEXT, deleted_at TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS deleted_at ON deleted (deleted_at, seq);
    CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL,
      status INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
  SQL

  # The database, the app-wide clock and the request log. Every request runs
  # under LOCK (see Gate), so none of this needs finer locking.
  class Store
    attr_reader :db, :log_seq

    def initialize(path)
      @db = SQLite3::Database.new(path)
      @db.results_as_hash = true
      @db.execute("PRAGMA journal_mode = WAL")
      @db.execute_batch(SCHEMA)
      # The clock survives restarts and /_reset, so updated_at never goes back.
      @last_ms = @db.get_first_value("SELECT v FROM meta WHERE k = 'clock'").to_i
      @log = []
      @log_seq = 0
    end

    # A new timestamp, 1 ms past the previous one if the wall clock has not
    # moved on: two writes never share an updated_at, so "updated_at > mark"
    # loses nothing and a list sorted by it is the order of the writes.
    def tick
      @last_ms = [(Time.now.to_r * 1000).floor, @last_ms + 1].max
      @db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('clock', ?)", [@last_ms.to_s])
      RubyApp.iso(Time.at(@last_ms / 1000, @last_ms % 1000, :millisecond))
    end

    # replayed: a create answered from its Idempotency-Key, which wrote nothing.
    def log(method, path, status, replayed)
      @log << { "seq" => (@log_seq += 1), "method" => method, "path" => path,
                "status" => status, "replayed" => replayed, "time" => RubyApp.iso(Time.now) }
    end

    def log_since(seq) = @log.select { |e| e["seq"] > seq }

    # Empties every table but keeps the clock and the log's numbering.
    def reset
      %w[customers todos deleted idempotency].each { |t| @db.execute("DELETE FROM #{t}") }
      @log.clear
    end
  end

  def self.iso(time) = time.utc.strftime("%Y-%m-%dT%H:%M:%S.%LZ")

  LOCK = Mutex.new

  # One request at a time (WEBrick runs a thread per connection), and each
  # one logged with the status it got; the /_ test routes are not logged.
  class Gate
    def initialize(app, store)
      @app = app
      @store = store
    end

    def call(env)
      LOCK.synchronize do
        status, headers, body = @app.call(env)
        path = env["PATH_INFO"]
        unless path.start_with?("/_")
          @store.log(env["REQUEST_METHOD"], path, status, headers.key?("Idempotency-Replayed"))
        end
        [status, headers, body]
      end
    end
  end

  EMAIL = /\A[^@\s]+@[^@\s]+\.[^@\s.]+\z/
  PHONE = /\A\+?[0-9][0-9 ().-]{2,}\z/
  READ_ONLY = %w[id customer_id created_at updated_at].freeze
  CUSTOMER_FIELDS = { "email" => :email, "first_name" => :text, "last_name" => :text,
                      "phone" => :phone, "company" => :text, "tags" => :tags,
                      "custom" => :custom }.freeze
  TODO_FIELDS = { "title" => :title, "notes" => :text, "due_at" => :time,
                  "done" => :bool }.freeze

  class Api < Sinatra::Base
    set :show_exceptions, false
    set :raise_errors, false
    set :dump_errors, true # a 500's backtrace goes to stderr; the client gets JSON
    set :protection, false
    set :x_cascade, false

    helpers do
      def store = settings.store
      def db = settings.store.db

      # Every error is {"error": message, "field": name or null}, never HTML.
      def fail!(code, message, field = nil, **extra)
        halt code, { "Content-Type" => "application/json" },
             JSON.generate({ "error" => message, "field" => field }.merge(extra))
      end

      def reply(code, obj)
        status code
        JSON.generate(obj)
      end

      def raw_body = (@raw_body ||= request.body.read)

      def body_object
        obj = raw_body.strip.empty? ? {} : JSON.parse(raw_body)
        fail!(400, "the body must be a JSON object") unless obj.is_a?(Hash)
        obj
      rescue JSON::ParserError
        fail!(400, "the body is not valid JSON")
      end

      def loopback? = ["127.0.0.1", "::1"].include?(request.env["REMOTE_ADDR"])

      def authorized?
        Rack::Utils.secure_compare(request.env["HTTP_AUTHORIZATION"].to_s, "Bearer #{TOKEN}")
      end

      def iso_param(name, value)
        RubyApp.iso(Time.iso8601(value))
      rescue ArgumentError, TypeError
        fail!(400, "#{name} must be an ISO-8601 time", name)
      end

      # The request's fields, checked against the resource's; values as stored.
      def clean(input, fields)
        input.to_h do |k, v|
          fail!(400, "#{k} is set by the server", k) if READ_ONLY.include?(k)
          fail!(400, "unknown field #{k}", k) unless fields.key?(k)
          [k, check(fields[k], k, v)]
        end
      end

      def check(type, k, v)
        ok = case type
             when :text then v.nil? || v.is_a?(String)
             when :email then v.nil? || (v.is_a?(String) && EMAIL.match?(v))
             when :phone then v.nil? || (v.is_a?(String) && PHONE.match?(v))
             when :title then v.is_a?(String) && !v.strip.empty?
             when :bool then [true, false].include?(v)
             when :tags then v.nil? || (v.is_a?(Array) && v.all?(String))
             when :custom then v.nil? || v.is_a?(Hash)
             when :time then v.nil? || v.is_a?(String)
             end
        fail!(400, "invalid #{k}", k) unless ok
        case type
        when :bool then v ? 1 : 0
        when :tags then JSON.generate(v || [])
        when :custom then v || {}
        when :time then v && iso_param(k, v)
        else v
        end
      end

      def limit_param
        s = params["limit"] || "50"
        fail!(400, "limit must be a positive integer", "limit") unless s.match?(/\A[1-9][0-9]*\z/)
        [s.to_i, 200].min
      end

      def decode_cursor(c)
        ts, key = JSON.parse(Base64.urlsafe_decode64(c))
        raise ArgumentError unless ts.is_a?(String) && key
        [ts, key]
      rescue ArgumentError, JSON::ParserError
        fail!(400, "invalid cursor", "cursor")
      end

      # A page of `table` in (ts, key) order: rows with ts >= the since
      # parameter, after the cursor's position. next_cursor is null when
      # nothing follows; otherwise it holds the last row's (ts, key).
      def paged(table, ts, key, since_param, conds = [], binds = [])
        limit = limit_param
        if (s = params[since_param])
          conds << "#{ts} >= ?"
          binds << iso_param(since_param, s)
        end
        if (c = params["cursor"])
          cts, ckey = decode_cursor(c)
          conds << "(#{ts} > ? OR (#{ts} = ? AND #{key} > ?))"
          binds += [cts, cts, ckey]
        end
        where = conds.empty? ? "" : "WHERE #{conds.join(' AND ')}"
        rows = db.execute("SELECT * FROM #{table} #{where} ORDER BY #{ts}, #{key} LIMIT ?",
                          binds + [limit + 1])
        nxt = nil
        if rows.size > limit
          rows = rows.first(limit)
          nxt = Base64.urlsafe_encode64(JSON.generate([rows.last[ts], rows.last[key]]), padding: false)
        end
        [rows, nxt]
      end

      def list(table, conds = [], binds = [])
        rows, nxt = paged(table, "updated_at", "id", "updated_since", conds, binds)
        reply(200, "data" => rows.map { |r| shape(r) }, "next_cursor" => nxt)
      end

      # A stored row as the API shows it.
      def shape(row)
        out = row.reject { |k, _| k.is_a?(Integer) }
        out["tags"] = JSON.parse(out["tags"]) if out.key?("tags")
        out["custom"] = JSON.parse(out["custom"]) if out.key?("custom")
        out["done"] = out["done"] == 1 if out.key?("done")
        stamps = out.slice("created_at", "updated_at")  # last, after the fields
        out.except(*stamps.keys).merge(stamps)
      end

      def find(table, id)
        db.get_first_row("SELECT * FROM #{table} WHERE id = ?", [id]) ||
          fail!(404, "no #{table.chomp('s')} #{id}", "id")
      end

      # 409 (with the holder's id, so a sync can link instead) if another
      # customer has this email.
      def unique_email!(email, id = "")
        return unless email
        other = db.get_first_value("SELECT id FROM customers WHERE email = ? AND id != ?", [email, id])
        fail!(409, "email already belongs to customer #{other}", "email", id: other) if other
      end

      def insert(table, prefix, values)
        now = store.tick
        values = values.merge("id" => "#{prefix}_#{SecureRandom.hex(8)}",
                              "created_at" => now, "updated_at" => now)
        values = values.transform_values { |v| v.is_a?(Hash) ? JSON.generate(v) : v }
        db.execute("INSERT INTO #{table} (#{values.keys.join(', ')}) VALUES " \
                   "(#{(['?'] * values.size).join(', ')})", values.values)
        shape(find(table, values["id"]))
      end

      # A PATCH that changes nothing is no write: updated_at stays, so writing
      # back what a poller just read does not show up as a new change.
      def update(table, row, changes)
        changes = changes.transform_values { |v| v.is_a?(Hash) ? JSON.generate(v) : v }
                         .reject { |k, v| row[k] == v }
        unless changes.empty?
          changes["updated_at"] = store.tick
          db.execute("UPDATE #{table} SET #{changes.keys.map { |k| "#{k} = ?" }.join(', ')} " \
                     "WHERE id = ?", changes.values + [row["id"]])
        end
        reply(200, shape(find(table, row["id"])))
      end

      # db.transaction answers true; this answers the block's value.
      def atomically
        result = nil
        db.transaction { result = yield }
        result
      end

      def tombstone(kind, id, customer_id)
        now = store.tick
        db.execute("INSERT INTO deleted (kind, id, customer_id, deleted_at) VALUES (?, ?, ?, ?)",
                   [kind, id, customer_id, now])
        now
      end

      # A create under an Idempotency-Key: the key's first 2xx answer is
      # stored in the create's own transaction, and a retry with the same key
      # and request gets that answer again instead of a second record. The
      # block must check everything before it writes: a halt commits.
      def idempotent_create
        key = request.env["HTTP_IDEMPOTENCY_KEY"]
        digest = Digest::SHA256.hexdigest("#{request.path_info}\n#{raw_body}")
        if key && (prev = db.get_first_row("SELECT * FROM idempotency WHERE key = ?", [key]))
          unless prev["digest"] == digest
            fail!(422, "Idempotency-Key was used for another request", "Idempotency-Key")
          end
          headers "Idempotency-Replayed" => "true"
          return reply(prev["status"], JSON.parse(prev["body"]))
        end
        atomically do
          record = yield
          body = JSON.generate(record)
          if key
            db.execute("INSERT INTO idempotency (key, digest, status, body) VALUES (?, ?, 201, ?)",
                       [key, digest, body])
          end
          status 201
          body
        end
      end
    end

    before do
      content_type :json
      next if request.path_info.start_with?("/_") && loopback?
      unless authorized?
        headers "WWW-Authenticate" => "Bearer"
        fail!(401, "missing or wrong bearer token", "Authorization")
      end
    end

    # -- customers ------------------------------------------------------------
    get("/customers") { list("customers") }
    get("/customers/:id") { reply(200, shape(find("customers", params["id"]))) }

    # Checks run inside idempotent_create, so a replay answers as the first
    # time did even if the customer has gone since.
    post "/customers" do
      idempotent_create do
        values = clean(body_object, CUSTOMER_FIELDS)
        unique_email!(values["email"])
        insert("customers", "cus", values)
      end
    end

    patch "/customers/:id" do
      row = find("customers", params["id"])
      changes = clean(body_object, CUSTOMER_FIELDS)
      unique_email!(changes["email"], row["id"])
      # custom merges key by key; a null value removes that key.
      if changes.key?("custom")
        custom = JSON.parse(row["custom"])
        changes["custom"].each { |k, v| v.nil? ? custom.delete(k) : custom[k] = v }
        changes["custom"] = custom
      end
      update("customers", row, changes)
    end

    delete "/customers/:id" do
      row = find("customers", params["id"])
      atomically do
        todos = db.execute("SELECT id FROM todos WHERE customer_id = ? ORDER BY id", [row["id"]])
        todos.each { |t| tombstone("todo", t["id"], row["id"]) }
        db.execute("DELETE FROM todos WHERE customer_id = ?", [row["id"]])
        db.execute("DELETE FROM customers WHERE id = ?", [row["id"]])
        at = tombstone("customer", row["id"], nil)
        reply(200, "id" => row["id"], "kind" => "customer", "deleted_at" => at,
                   "todos_deleted" => todos.size)
      end
    end

    # -- todos ----------------------------------------------------------------
    get "/todos" do
      cid = params["customer_id"]
      cid ? list("todos", ["customer_id = ?"], [cid]) : list("todos")
    end

    get "/customers/:id/todos" do
      find("customers", params["id"])
      list("todos", ["customer_id = ?"], [params["id"]])
    end

    get("/todos/:id") { reply(200, shape(find("todos", params["id"]))) }

    post "/customers/:id/todos" do
      idempotent_create do
        customer = find("customers", params["id"])
        values = clean(body_object, TODO_FIELDS)
        fail!(400, "title is required", "title") unless values.key?("title")
        insert("todos", "todo", values.merge("customer_id" => customer["id"]))
      end
    end

    patch "/todos/:id" do
      row = find("todos", params["id"])
      update("todos", row, clean(body_object, TODO_FIELDS))
    end

    delete "/todos/:id" do
      row = find("todos", params["id"])
      atomically do
        db.execute("DELETE FROM todos WHERE id = ?", [row["id"]])
        at = tombstone("todo", row["id"], row["customer_id"])
        reply(200, "id" => row["id"], "kind" => "todo", "deleted_at" => at)
      end
    end

    # -- deletions --------------------------------------------------------------
    get "/deleted" do
      kind = params["kind"]
      fail!(400, "kind must be customer or todo", "kind") if kind && !%w[customer todo].include?(kind)
      rows, nxt = kind ? paged("deleted", "deleted_at", "seq", "since", ["kind = ?"], [kind])
                       : paged("deleted", "deleted_at", "seq", "since")
      reply(200, "data" => rows.map { |r| shape(r).except("seq") }, "next_cursor" => nxt)
    end

    # -- for tests --------------------------------------------------------------
    get "/_log" do
      reply(200, "requests" => store.log_since(params["since"].to_i), "last_seq" => store.log_seq)
    end

    post "/_reset" do
      store.reset
      reply(200, "reset" => true)
    end

    # Anything else: a JSON 404 rather than Sinatra's HTML page.
    %w[get post put patch delete].each do |verb|
      send(verb, "*") { fail!(404, "no route #{request.request_method} #{request.path_info}") }
    end

    error do
      e = env["sinatra.error"]
      code = e.respond_to?(:http_status) && e.http_status.between?(400, 499) ? e.http_status : 500
      status code
      JSON.generate("error" => code == 500 ? "internal error (#{e.class})" : e.message, "field" => nil)
    end
  end

  # The Rack app: the API behind the Gate, on a store at APP_DB.
  def self.app(db_path = ENV.fetch("APP_DB", "app.db"))
    abort "ruby-app: set APP_TOKEN (the bearer token clients must send)" if TOKEN.empty?
    store = Store.new(db_path)
    Api.set :store, store
    Gate.new(Api, store)
  end

  def self.serve
    app = self.app
    server = WEBrick::HTTPServer.new(BindAddress: "127.0.0.1", Port: Integer(ENV.fetch("APP_PORT", "4567")),
                                     Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN),
                                     AccessLog: [])
    server.mount("/", Rack::Handler::WEBrick, app)
    %w[INT TERM].each { |sig| trap(sig) { server.shutdown } }
    # The real port (APP_PORT=0 picks a free one) for whoever started us.
    $stdout.puts "listening on 127.0.0.1:#{server.listeners[0].addr[1]}"
    $stdout.flush
    server.start
  end
end

RubyApp.serve if $PROGRAM_NAME == __FILE__
