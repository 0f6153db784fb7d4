//! The floor Switchboard is built on: a bare actix-web + actix-web-actors broadcast server (every
//! text message goes to every other open connection), with the settings Switchboard's faces use
//! (one worker, `tcp_nodelay`). `bench/run.sh` runs it beside Switchboard and the Node peers, so
//! the table shows what the framework alone costs per connection and per delivery.
//!
//! ```text
//! cargo run --release --example actix_peer     # prints "listening <port>"
//! ```

use std::cell::RefCell;
use std::collections::HashSet;

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use bytestring::ByteString;

#[derive(Message, Clone)]
#[rtype(result = "()")]
struct Frame(ByteString);

thread_local! {
    /// Every open connection of this (single) worker thread.
    static OPEN: RefCell<HashSet<Addr<Peer>>> = RefCell::new(HashSet::new());
}

struct Peer;

impl Actor for Peer {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        OPEN.with(|open| open.borrow_mut().insert(ctx.address()));
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        OPEN.with(|open| open.borrow_mut().remove(&ctx.address()));
    }
}

impl Handler<Frame> for Peer {
    type Result = ();

    fn handle(&mut self, Frame(text): Frame, ctx: &mut Self::Context) {
        ctx.text(text);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Peer {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match message {
            Ok(ws::Message::Text(text)) => {
                let me = ctx.address();
                OPEN.with(|open| {
                    for peer in open.borrow().iter().filter(|peer| **peer != me) {
                        peer.do_send(Frame(text.clone()));
                    }
                });
            }
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}

async fn upgrade(
    request: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    ws::start(Peer, &request, stream)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let server = HttpServer::new(|| App::new().default_service(web::to(upgrade)))
        .tcp_nodelay(true)
        .workers(1)
        .max_connections(100_000)
        .bind("127.0.0.1:0")?;
    println!("listening {}", server.addrs()[0].port());
    server.run().await
}
