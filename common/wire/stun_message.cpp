#include "wire/stun_message.hpp"
