# For rackup or another Rack server: `APP_TOKEN=secret APP_DB=app.db rackup -o 127.0.0.1`.
# `ruby app.rb` needs no Rack server of its own and prints the port it got.
require_relative "app"
run RubyApp.app
