// A REST body into every request message of the API, parsed as the REST transport parses it
// (api/server.cc: JSON, unknown fields refused): any bytes, no crash; a body that parses
// survives a binary and a JSON round trip unchanged.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "volguard.pb.h"

namespace pb = google::protobuf;

namespace {
const std::vector<const pb::Message*>& prototypes() {
  static const std::vector<const pb::Message*> all = [] {
    std::vector<const pb::Message*> out;
    const pb::FileDescriptor* file = volguard::v1::Empty::descriptor()->file();
    for (int i = 0; i < file->message_type_count(); ++i) {
      out.push_back(pb::MessageFactory::generated_factory()->GetPrototype(file->message_type(i)));
    }
    return out;
  }();
  return all;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the message; the rest is the body.
  const auto& all = prototypes();
  const pb::Message* proto = all[data[0] % all.size()];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::unique_ptr<pb::Message> msg(proto->New());
  pb::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = false;
  if (!pb::util::JsonStringToMessage(body, msg.get(), parse).ok()) return 0;
  std::unique_ptr<pb::Message> copy(proto->New());
  if (!copy->ParseFromString(msg->SerializeAsString())) std::abort();
  if (!pb::util::MessageDifferencer::Equals(*msg, *copy)) std::abort();
  std::string json;
  if (!pb::util::MessageToJsonString(*msg, &json).ok()) std::abort();
  std::unique_ptr<pb::Message> back(proto->New());
  if (!pb::util::JsonStringToMessage(json, back.get(), parse).ok()) std::abort();
  if (!pb::util::MessageDifferencer::Equals(*msg, *back)) std::abort();
  return 0;
}
